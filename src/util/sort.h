// Sorting and binary search for core code, which cannot use <algorithm>.
//
// Contract:
//  - Sort(first, last, less) sorts [first, last) ascending under `less`, a strict weak
//    ordering (as std::sort requires). Introsort: median-of-3 quicksort, heapsort once the
//    recursion depth passes 2*log2(n), insertion sort for ranges of 16 or fewer. O(n log n)
//    worst case; not stable; T needs only move construction/assignment and swap.
//    Sort(vector, less) sorts a whole std::vector. Overloads without `less` use operator<.
//  - LowerBound(first, last, key, less) returns the first element e with !less(e, key);
//    UpperBound returns the first e with less(key, e). Both return `last` when there is none.
//    The range must be partitioned by the same predicate (e.g. sorted by `less`).
// Thread-safety: pure functions over caller-owned data.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace permfs {

struct DefaultLess {
  template <class A, class B>
  constexpr bool operator()(const A& a, const B& b) const {
    return a < b;
  }
};

namespace sort_internal {

inline constexpr std::ptrdiff_t kInsertionThreshold = 16;

template <class T, class Less>
void InsertionSort(T* first, T* last, Less& less) {
  if (first == last) return;
  for (T* i = first + 1; i < last; ++i) {
    if (less(*i, *first)) {
      T v = std::move(*i);
      for (T* j = i; j > first; --j) *j = std::move(*(j - 1));
      *first = std::move(v);
    } else {
      T v = std::move(*i);
      T* j = i;
      while (less(v, *(j - 1))) {  // *first is not greater than v: the scan stops there
        *j = std::move(*(j - 1));
        --j;
      }
      *j = std::move(v);
    }
  }
}

template <class T, class Less>
void SiftDown(T* base, std::ptrdiff_t root, std::ptrdiff_t n, Less& less) {
  T v = std::move(base[root]);
  while (true) {
    std::ptrdiff_t child = 2 * root + 1;
    if (child >= n) break;
    if (child + 1 < n && less(base[child], base[child + 1])) ++child;
    if (!less(v, base[child])) break;
    base[root] = std::move(base[child]);
    root = child;
  }
  base[root] = std::move(v);
}

template <class T, class Less>
void HeapSort(T* first, T* last, Less& less) {
  const std::ptrdiff_t n = last - first;
  for (std::ptrdiff_t i = n / 2 - 1; i >= 0; --i) SiftDown(first, i, n, less);
  for (std::ptrdiff_t end = n - 1; end > 0; --end) {
    using std::swap;
    swap(first[0], first[end]);
    SiftDown(first, 0, end, less);
  }
}

// Moves the median of *a, *b, *c into *result.
template <class T, class Less>
void MoveMedianToFirst(T* result, T* a, T* b, T* c, Less& less) {
  using std::swap;
  if (less(*a, *b)) {
    if (less(*b, *c)) {
      swap(*result, *b);
    } else if (less(*a, *c)) {
      swap(*result, *c);
    } else {
      swap(*result, *a);
    }
  } else if (less(*a, *c)) {
    swap(*result, *a);
  } else if (less(*b, *c)) {
    swap(*result, *c);
  } else {
    swap(*result, *b);
  }
}

// Hoare partition of [first, last) around *pivot (which lies just before first). Scans stop on
// elements equal to the pivot, so runs of duplicates split evenly. The median-of-3 choice
// guarantees each scan meets a stopping element inside the range.
template <class T, class Less>
T* UnguardedPartition(T* first, T* last, T* pivot, Less& less) {
  using std::swap;
  while (true) {
    while (less(*first, *pivot)) ++first;
    --last;
    while (less(*pivot, *last)) --last;
    if (!(first < last)) return first;
    swap(*first, *last);
    ++first;
  }
}

template <class T, class Less>
void IntroLoop(T* first, T* last, int depth, Less& less) {
  while (last - first > kInsertionThreshold) {
    if (depth == 0) {
      HeapSort(first, last, less);
      return;
    }
    --depth;
    T* mid = first + (last - first) / 2;
    MoveMedianToFirst(first, first + 1, mid, last - 1, less);
    T* cut = UnguardedPartition(first + 1, last, first, less);
    // Recurse into the smaller side, loop on the larger: stack depth stays O(log n).
    if (cut - first < last - cut) {
      IntroLoop(first, cut, depth, less);
      first = cut;
    } else {
      IntroLoop(cut, last, depth, less);
      last = cut;
    }
  }
  InsertionSort(first, last, less);
}

inline int Log2Floor(std::size_t n) { return n ? 63 - __builtin_clzll(n) : 0; }

}  // namespace sort_internal

template <class T, class Less>
void Sort(T* first, T* last, Less less) {
  if (last - first < 2) return;
  sort_internal::IntroLoop(first, last,
                           2 * sort_internal::Log2Floor(static_cast<std::size_t>(last - first)),
                           less);
}

template <class T>
void Sort(T* first, T* last) {
  Sort(first, last, DefaultLess{});
}

template <class T, class Alloc, class Less>
void Sort(std::vector<T, Alloc>& v, Less less) {
  if (!v.empty()) Sort(v.data(), v.data() + v.size(), less);
}

template <class T, class Alloc>
void Sort(std::vector<T, Alloc>& v) {
  Sort(v, DefaultLess{});
}

template <class T, class Key, class Less>
T* LowerBound(T* first, T* last, const Key& key, Less less) {
  std::ptrdiff_t count = last - first;
  while (count > 0) {
    std::ptrdiff_t step = count / 2;
    T* it = first + step;
    if (less(*it, key)) {
      first = it + 1;
      count -= step + 1;
    } else {
      count = step;
    }
  }
  return first;
}

template <class T, class Key>
T* LowerBound(T* first, T* last, const Key& key) {
  return LowerBound(first, last, key, DefaultLess{});
}

template <class T, class Key, class Less>
T* UpperBound(T* first, T* last, const Key& key, Less less) {
  std::ptrdiff_t count = last - first;
  while (count > 0) {
    std::ptrdiff_t step = count / 2;
    T* it = first + step;
    if (!less(key, *it)) {
      first = it + 1;
      count -= step + 1;
    } else {
      count = step;
    }
  }
  return first;
}

template <class T, class Key>
T* UpperBound(T* first, T* last, const Key& key) {
  return UpperBound(first, last, key, DefaultLess{});
}

}  // namespace permfs
