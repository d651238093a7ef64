// Filesystem::RunTxn: the one way namespace code runs a metadata transaction.
// Included only by fs/*.cc. Thread-safety: as Filesystem.
#pragma once

#include "fs/filesystem.h"

namespace permfs::fs {

template <typename F>
Status Filesystem::RunTxn(F&& fn, bool frees_space) noexcept {
  for (int attempt = 0;; ++attempt) {
    auto t = vol_->meta()->Begin();
    if (!t.ok()) return t.status();
    t->set_use_reserve(frees_space);
    Status st = fn(*t);
    if (st.ok()) return t->Commit();
    t->Abort();
    // Space freed by earlier transactions becomes reusable at a checkpoint: take one and retry.
    if (st.IsNoSpace() && attempt == 0 && vol_->allocator()->HasPendingFrees()) {
      PERMFS_RETURN_IF_ERROR(vol_->meta()->SyncAndCheckpoint());
      continue;
    }
    return st;
  }
}

}  // namespace permfs::fs
