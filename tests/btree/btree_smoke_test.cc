// End-to-end smoke test of the foundation stack: mkfs -> mount -> B+tree writes -> remount.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "block/mem_block_device.h"
#include "btree/btree.h"
#include "util/random.h"
#include "volume/volume.h"

namespace permfs {
namespace {

std::string Key(std::uint64_t i) {
  char b[32];
  snprintf(b, sizeof b, "key-%08llu", static_cast<unsigned long long>(i));
  return b;
}

TEST(BTreeSmokeTest, MkfsMountInsertRemount) {
  block::MemBlockDevice dev(4096);  // 16 MiB
  ASSERT_TRUE(volume::Volume::Mkfs(&dev, {}).ok());
  std::map<std::string, std::string> model;
  Random rnd(42);
  {
    auto v = volume::Volume::Mount(&dev, {});
    ASSERT_TRUE(v.ok()) << v.status().message();
    btree::BTree tree((*v)->meta(), (*v)->allocator(), (*v)->roots(), 3);
    for (int round = 0; round < 40; ++round) {
      auto t = (*v)->meta()->Begin();
      ASSERT_TRUE(t.ok());
      for (int i = 0; i < 100; ++i) {
        std::uint64_t k = rnd.Uniform(3000);
        if (rnd.OneIn(3)) {
          Status st = tree.Delete(*t, Key(k));
          ASSERT_TRUE(st.ok() || st.IsNotFound()) << st.message();
          model.erase(Key(k));
        } else {
          std::string val(rnd.Uniform(200) + 1, static_cast<char>('a' + rnd.Uniform(26)));
          Status st = tree.Put(*t, Key(k), val);
          ASSERT_TRUE(st.ok()) << st.message();
          model[Key(k)] = val;
        }
      }
      ASSERT_TRUE(t->Commit().ok());
      if (round % 7 == 0) {
        ASSERT_TRUE((*v)->meta()->Sync().ok());
      }
    }
    {
      journal::ReadView view((*v)->meta());
      btree::TreeCheckStats st;
      Status cs = tree.Check(view, &st, nullptr, nullptr);
      ASSERT_TRUE(cs.ok()) << cs.message();
      EXPECT_EQ(st.entries, model.size());
      EXPECT_GE(st.height, 2u);
    }
    ASSERT_TRUE((*v)->Unmount().ok());
  }
  auto v = volume::Volume::Mount(&dev, {});
  ASSERT_TRUE(v.ok()) << v.status().message();
  btree::BTree tree((*v)->meta(), (*v)->allocator(), (*v)->roots(), 3);
  journal::ReadView view((*v)->meta());
  std::map<std::string, std::string> seen;
  Status s = tree.Scan(view, btree::Slice(), btree::Slice(),
                       [](void* ctx, const btree::Slice& k, const btree::Slice& val) {
                         (*static_cast<std::map<std::string, std::string>*>(ctx))[k.ToString()] =
                             val.ToString();
                         return true;
                       },
                       &seen);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(seen, model);
}

}  // namespace
}  // namespace permfs
