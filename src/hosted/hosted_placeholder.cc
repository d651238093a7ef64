// Anchor so permfs_hosted is never empty.
namespace permfs::hosted { int placeholder_anchor = 0; }
