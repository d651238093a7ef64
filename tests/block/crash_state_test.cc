#include "block/crash_state.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "block/mem_block_device.h"
#include "block/recording_block_device.h"

namespace permfs::block {
namespace {

constexpr std::uint32_t kBs = 4;  // tiny blocks keep expected images readable
constexpr std::uint32_t kBlocks = 8;

class TraceBuilder {
 public:
  TraceBuilder& W(std::uint64_t lba, std::string blocks, std::uint32_t flags = 0) {
    TraceEntry e = Base(TraceOp::kWrite);
    e.lba = lba;
    e.count = static_cast<std::uint32_t>(blocks.size());
    e.flags = flags;
    for (char c : blocks)
      for (std::uint32_t i = 0; i < kBs; ++i) e.data.push_back(static_cast<std::uint8_t>(c));
    t.push_back(e);
    return *this;
  }
  // A flush submitted after every entry so far.
  TraceBuilder& F() { return FCovering(seq_); }
  TraceBuilder& FCovering(std::uint64_t covers) {
    TraceEntry e = Base(TraceOp::kFlush);
    e.flush_covers_seq = covers;
    t.push_back(e);
    return *this;
  }
  TraceBuilder& Z(std::uint64_t lba, std::uint32_t count) {
    TraceEntry e = Base(TraceOp::kWriteZeroes);
    e.lba = lba;
    e.count = count;
    t.push_back(e);
    return *this;
  }
  TraceBuilder& M(const char* label) {
    TraceEntry e = Base(TraceOp::kMark);
    e.mark = label;
    t.push_back(e);
    return *this;
  }
  std::vector<TraceEntry> t;

 private:
  TraceEntry Base(TraceOp op) {
    TraceEntry e;
    e.seq = seq_++;
    e.op = op;
    return e;
  }
  std::uint64_t seq_ = 0;
};

// Base image: every block holds '.'.
std::vector<std::uint8_t> BaseImage() { return std::vector<std::uint8_t>(kBlocks * kBs, '.'); }

// One char per block (the first byte of each block; '?' if the block is not uniform).
std::string Render(const std::vector<std::uint8_t>& img) {
  std::string s;
  for (std::uint32_t b = 0; b < kBlocks; ++b) {
    char c = static_cast<char>(img[b * kBs]);
    for (std::uint32_t i = 1; i < kBs; ++i)
      if (img[b * kBs + i] != img[b * kBs]) c = '?';
    if (c == 0) c = '0';
    s.push_back(c);
  }
  return s;
}

std::vector<CrashState> All(CrashStateEnumerator* en) {
  std::vector<CrashState> v;
  CrashState s;
  while (en->Next(&s)) v.push_back(s);
  return v;
}

CrashStateOptions Only(bool prefixes, bool subsets, bool torn, CutPoints cuts) {
  CrashStateOptions o;
  o.prefixes = prefixes;
  o.subsets = subsets;
  o.torn = torn;
  o.cut_points = cuts;
  return o;
}

void ExpectBuildReproduces(const CrashStateEnumerator& en, const std::vector<CrashState>& states) {
  for (const CrashState& s : states) {
    auto r = en.Build(s.id);
    ASSERT_TRUE(r.ok()) << s.id;
    EXPECT_EQ(r->image, s.image) << s.id;
    EXPECT_EQ(r->cut, s.cut) << s.id;
    EXPECT_EQ(r->marks_durable, s.marks_durable) << s.id;
    EXPECT_EQ(r->id, s.id);
  }
}

TEST(CrashState, PrefixesAtEveryOp) {
  TraceBuilder b;
  b.W(0, "a").W(1, "b").F().W(0, "c").M("m").Z(2, 2).W(3, "de");
  CrashStateEnumerator en(BaseImage(), kBs, b.t, Only(true, false, false, CutPoints::kEveryOp));
  ASSERT_TRUE(en.status().ok());
  auto st = All(&en);
  // 6 non-mark ops -> 7 prefix states.
  ASSERT_EQ(st.size(), 7u);
  const char* want[] = {"........", "a.......", "ab......", "ab......",
                        "cb......", "cb00....", "cb0de..."};
  const std::uint64_t cuts[] = {0, 1, 2, 3, 5, 6, 7};  // the cut after W(0,"c") covers the mark
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(Render(st[i].image), want[i]) << i;
    EXPECT_EQ(st[i].cut, cuts[i]);
    EXPECT_EQ(st[i].id, "cut=" + std::to_string(cuts[i]) + ":mode=prefix");
  }
  EXPECT_EQ(st[4].last_mark, 4);
  EXPECT_EQ(st[4].marks_durable, -1);  // W(0,"c") before the mark is not flushed
  ExpectBuildReproduces(en, st);
}

TEST(CrashState, AllSubsetsOfTheEpoch) {
  TraceBuilder b;
  b.W(0, "a").F().W(1, "b").W(2, "c").W(1, "d");
  CrashStateEnumerator en(BaseImage(), kBs, b.t, Only(false, true, false, CutPoints::kFlushes));
  auto st = All(&en);
  // Cut before the flush: epoch {a} -> 2 states. Cut at end: epoch {b, c, d} -> 8 states.
  ASSERT_EQ(st.size(), 10u);
  EXPECT_EQ(Render(st[0].image), "........");
  EXPECT_EQ(Render(st[1].image), "a.......");
  std::multiset<std::string> got;
  for (int i = 2; i < 10; ++i) {
    EXPECT_EQ(st[i].cut, 5u);
    EXPECT_EQ(st[i].durable_prefix, 1u);
    got.insert(Render(st[i].image));
  }
  std::multiset<std::string> want = {"a.......", "ab......", "a.c.....", "abc.....",
                                     "ad......", "ad......", "adc.....", "adc....."};
  EXPECT_EQ(got, want);
  EXPECT_EQ(st[2 + 0b101].id, "cut=5:mode=subset:mask=0x5");
  EXPECT_EQ(Render(st[2 + 0b101].image), "ad......");  // b and d applied in order
  EXPECT_EQ(Render(st[2 + 0b011].image), "abc.....");
  ExpectBuildReproduces(en, st);
}

TEST(CrashState, FuaWritesAreAlwaysDurable) {
  TraceBuilder b;
  b.W(0, "a").W(1, "b", kFua).W(2, "c");
  CrashStateEnumerator en(BaseImage(), kBs, b.t, Only(false, true, false, CutPoints::kFlushes));
  auto st = All(&en);
  ASSERT_EQ(st.size(), 4u);  // epoch {a, c}
  std::set<std::string> got;
  for (auto& s : st) got.insert(Render(s.image));
  EXPECT_EQ(got, (std::set<std::string>{".b......", "ab......", ".bc.....", "abc....."}));
}

TEST(CrashState, FlushOnlyCoversWritesCompletedBeforeItsSubmission) {
  TraceBuilder b;
  b.W(0, "a").W(1, "b").FCovering(1);  // flush submitted before W(1,"b") completed
  CrashStateEnumerator en(BaseImage(), kBs, b.t, Only(false, true, false, CutPoints::kFlushes));
  auto st = All(&en);
  // cut 2 (before the flush): epoch {a, b}; cut 3: durable {a}, epoch {b}.
  ASSERT_EQ(st.size(), 6u);
  EXPECT_EQ(st[4].cut, 3u);
  EXPECT_EQ(st[4].durable_prefix, 1u);
  EXPECT_EQ(Render(st[4].image), "a.......");
  EXPECT_EQ(Render(st[5].image), "ab......");
}

TEST(CrashState, MarksDurable) {
  TraceBuilder b;
  b.M("m0").W(0, "a").M("m1: before flush").F().M("m2: after flush").W(1, "b").M("m3");
  CrashStateEnumerator en(BaseImage(), kBs, b.t, Only(true, false, false, CutPoints::kMarks));
  auto st = All(&en);
  ASSERT_EQ(st.size(), 4u);
  EXPECT_EQ(st[0].marks_durable, 0);  // nothing written before m0
  EXPECT_EQ(st[1].marks_durable, 0);  // a not flushed yet
  EXPECT_EQ(st[1].last_mark, 2);
  EXPECT_EQ(st[2].marks_durable, 4);  // the flush covers everything before m1 and m2
  EXPECT_EQ(st[3].marks_durable, 4);  // b is volatile
  EXPECT_EQ(st[3].last_mark, 6);
}

TEST(CrashState, TornAndGarbageVariants) {
  TraceBuilder b;
  b.W(0, "a").F().W(4, "x").W(1, "def").W(5, "y");
  CrashStateEnumerator en(BaseImage(), kBs, b.t, Only(false, false, true, CutPoints::kFlushes));
  auto st = All(&en);
  // Torn target W(1,"def"): 2^3-2 proper masks + 3 garbage blocks; only at the final cut.
  ASSERT_EQ(st.size(), 9u);
  std::set<std::string> torn;
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(st[i].id.find("mode=torn:"), 6u) << st[i].id;
    torn.insert(Render(st[i].image));
  }
  EXPECT_EQ(torn, (std::set<std::string>{"ad..x...", "a.e.x...", "ade.x...", "a..fx...",
                                         "ad.fx...", "a.efx..."}));
  EXPECT_EQ(st[0].id, "cut=5:mode=torn:mask=0x1");
  EXPECT_EQ(Render(st[0].image), "ad..x...");
  for (int i = 6; i < 9; ++i) {
    std::string r = Render(st[i].image);
    std::string want = "adefx...";
    want[1 + (i - 6)] = '?';
    EXPECT_EQ(r, want) << st[i].id;
  }
  ExpectBuildReproduces(en, st);
}

TEST(CrashState, LargeEpochIsSampled) {
  TraceBuilder b;
  for (int i = 0; i < 12; ++i) b.W(static_cast<std::uint64_t>(i % kBlocks), "w");
  CrashStateOptions o = Only(false, true, false, CutPoints::kFlushes);
  o.seed = 9;
  std::vector<std::uint8_t> base((kBlocks) * kBs, '.');
  CrashStateEnumerator en(base, kBs, b.t, o);
  auto st = All(&en);
  ASSERT_EQ(st.size(), 1024u + 12 + 12);
  EXPECT_EQ(st[0].id, "cut=12:mode=sample:n=0:seed=9");
  EXPECT_EQ(st[1024].id, "cut=12:mode=drop:i=0");
  EXPECT_EQ(st[1036].id, "cut=12:mode=keep:i=0");
  ExpectBuildReproduces(en, st);
  // Seeded: the same seed gives the same states.
  CrashStateEnumerator en2(base, kBs, b.t, o);
  CrashState s;
  ASSERT_TRUE(en2.Next(&s));
  EXPECT_EQ(s.image, st[0].image);
}

TEST(CrashState, BadIdsAndTracesAreRejected) {
  TraceBuilder b;
  b.W(0, "a").W(1, "bc");
  CrashStateEnumerator en(BaseImage(), kBs, b.t, CrashStateOptions());
  for (const char* id : {"", "cut=9:mode=prefix", "cut=1:mode=nope", "cut=2:mode=subset:mask=0x4",
                         "cut=2:mode=subset", "cut=1:mode=torn:mask=0x1", "cut=x:mode=prefix",
                         "cut=2:mode=drop:i=2", "cut=2:mode=garbage:blk=2:seed=1",
                         "cut=2:mode=prefix:bogus=1", "cut=99999999999999999999999:mode=prefix"}) {
    EXPECT_FALSE(en.Build(id).ok()) << id;
  }
  EXPECT_TRUE(en.Build("cut=2:mode=subset:mask=0x3").ok());

  TraceBuilder bad;
  bad.W(7, "ab");  // beyond the 8-block image
  CrashStateEnumerator en2(BaseImage(), kBs, bad.t, CrashStateOptions());
  EXPECT_EQ(en2.status().code(), Code::kInvalidArgument);
  CrashState s;
  EXPECT_FALSE(en2.Next(&s));
}

TEST(CrashState, EndToEndWithRecordingDevice) {
  constexpr std::uint32_t bs = 4096;
  MemBlockDevice mem(256, bs);
  std::vector<std::uint8_t> base = mem.Snapshot();
  RecordingBlockDevice rec(&mem);
  std::vector<std::uint8_t> buf(4 * bs);
  for (int i = 0; i < 40; ++i) {
    for (auto& x : buf) x = static_cast<std::uint8_t>(i + 1);
    ASSERT_TRUE(rec.Write(static_cast<std::uint64_t>(i * 3 % 250), 1 + i % 4, buf.data()).ok());
    if (i % 8 == 7) {
      ASSERT_TRUE(rec.Flush().ok());
      rec.Mark("durable");
    }
  }
  CrashStateOptions o;
  o.cut_points = CutPoints::kEveryOp;
  CrashStateEnumerator en(base, bs, rec.trace(), o);
  CrashState s;
  std::uint64_t n = 0;
  while (en.Next(&s)) {
    ++n;
    if (n % 97 == 0) {
      auto r = en.Build(s.id);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->image, s.image) << s.id;
    }
    if (s.id.find("mode=prefix") != std::string::npos && s.cut == rec.trace().size()) {
      EXPECT_EQ(s.image, mem.Snapshot());
    }
  }
  EXPECT_GT(n, 200u);
}

}  // namespace
}  // namespace permfs::block
