// SmallVector: a vector of trivially copyable T that keeps up to N elements
// inline and only goes to the heap beyond that.
//
// Shapes are SmallVector<int64_t, 8>: every tensor handle and every shape a
// kernel computes lives on the stack or inside the Tensor, so a planned run
// (runtime/session.h) performs no heap allocation. The interface is the
// subset of std::vector the code base uses, with the same meaning.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <new>
#include <type_traits>
#include <vector>

namespace sarai {

template <class T, size_t N>
class SmallVector {
  static_assert(std::is_trivially_copyable_v<T>, "SmallVector holds trivially copyable elements only");

 public:
  using value_type = T;
  using size_type = size_t;
  using iterator = T*;
  using const_iterator = const T*;
  using reverse_iterator = std::reverse_iterator<iterator>;
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;

  SmallVector() noexcept {}  // user-provided: inline_ stays uninitialized
  explicit SmallVector(size_t n, const T& v = T()) { assign(n, v); }
  SmallVector(std::initializer_list<T> init) { assign(init.begin(), init.end()); }
  template <class It, class = typename std::iterator_traits<It>::iterator_category>
  SmallVector(It first, It last) { assign(first, last); }
  // From a std::vector (attributes, test code); copies the elements.
  SmallVector(const std::vector<T>& v) { assign(v.begin(), v.end()); }  // NOLINT: implicit on purpose
  SmallVector(const SmallVector& o) { assign(o.begin(), o.end()); }
  SmallVector(SmallVector&& o) noexcept { take(o); }
  SmallVector& operator=(const SmallVector& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  SmallVector& operator=(SmallVector&& o) noexcept {
    if (this != &o) {
      release();
      take(o);
    }
    return *this;
  }
  SmallVector& operator=(std::initializer_list<T> init) {
    assign(init.begin(), init.end());
    return *this;
  }
  ~SmallVector() { release(); }

  std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }
  // To a std::vector (attributes, tests); allocates, so kernels do not use it.
  operator std::vector<T>() const { return to_vector(); }  // NOLINT: implicit on purpose

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return cap_; }
  T* data() { return ptr(); }
  const T* data() const { return ptr(); }
  T& operator[](size_t i) { assert(i < size_); return ptr()[i]; }
  const T& operator[](size_t i) const { assert(i < size_); return ptr()[i]; }
  T& at(size_t i) { assert(i < size_); return ptr()[i]; }
  const T& at(size_t i) const { assert(i < size_); return ptr()[i]; }
  T& front() { return (*this)[0]; }
  const T& front() const { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }
  const T& back() const { return (*this)[size_ - 1]; }
  iterator begin() { return ptr(); }
  iterator end() { return ptr() + size_; }
  const_iterator begin() const { return ptr(); }
  const_iterator end() const { return ptr() + size_; }
  const_iterator cbegin() const { return ptr(); }
  const_iterator cend() const { return ptr() + size_; }
  reverse_iterator rbegin() { return reverse_iterator(end()); }
  reverse_iterator rend() { return reverse_iterator(begin()); }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }

  void reserve(size_t n) {
    if (n <= cap_) return;
    T* p = static_cast<T*>(std::malloc(n * sizeof(T)));
    if (!p) throw std::bad_alloc();
    if (size_) std::memcpy(p, ptr(), size_ * sizeof(T));
    if (heap_) std::free(heap_);
    heap_ = p;
    cap_ = n;
  }
  void clear() { size_ = 0; }
  void resize(size_t n, const T& v = T()) {
    if (n > size_) {
      grow_to(n);
      std::fill(ptr() + size_, ptr() + n, v);
    }
    size_ = n;
  }
  void assign(size_t n, const T& v) {
    clear();
    resize(n, v);
  }
  template <class It, class = typename std::iterator_traits<It>::iterator_category>
  void assign(It first, It last) {
    clear();
    for (; first != last; ++first) push_back(static_cast<T>(*first));
  }
  void push_back(const T& v) {
    T copy = v;  // v may live in this vector
    grow_to(size_ + 1);
    ptr()[size_++] = copy;
  }
  T& emplace_back(const T& v) {
    push_back(v);
    return back();
  }
  void pop_back() { assert(size_ > 0); --size_; }

  iterator insert(const_iterator pos, const T& v) { return insert(pos, size_t{1}, v); }
  iterator insert(const_iterator pos, size_t n, const T& v) {
    size_t at = static_cast<size_t>(pos - begin());
    T copy = v;
    open_gap(at, n);
    std::fill(ptr() + at, ptr() + at + n, copy);
    return ptr() + at;
  }
  template <class It, class = typename std::iterator_traits<It>::iterator_category>
  iterator insert(const_iterator pos, It first, It last) {
    size_t at = static_cast<size_t>(pos - begin());
    SmallVector tmp(first, last);  // the range may alias this vector
    open_gap(at, tmp.size());
    std::copy(tmp.begin(), tmp.end(), ptr() + at);
    return ptr() + at;
  }
  iterator insert(const_iterator pos, std::initializer_list<T> init) { return insert(pos, init.begin(), init.end()); }
  iterator erase(const_iterator pos) { return erase(pos, pos + 1); }
  iterator erase(const_iterator first, const_iterator last) {
    size_t a = static_cast<size_t>(first - begin()), b = static_cast<size_t>(last - begin());
    std::memmove(ptr() + a, ptr() + b, (size_ - b) * sizeof(T));
    size_ -= b - a;
    return ptr() + a;
  }

  friend bool operator==(const SmallVector& x, const SmallVector& y) {
    return x.size_ == y.size_ && std::equal(x.begin(), x.end(), y.begin());
  }
  friend bool operator!=(const SmallVector& x, const SmallVector& y) { return !(x == y); }
  friend bool operator<(const SmallVector& x, const SmallVector& y) {
    return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end());
  }
  friend bool operator==(const SmallVector& x, const std::vector<T>& y) {
    return x.size_ == y.size() && std::equal(x.begin(), x.end(), y.begin());
  }
  friend bool operator==(const std::vector<T>& y, const SmallVector& x) { return x == y; }
  friend bool operator!=(const SmallVector& x, const std::vector<T>& y) { return !(x == y); }
  friend bool operator!=(const std::vector<T>& y, const SmallVector& x) { return !(x == y); }

 private:
  T* ptr() { return heap_ ? heap_ : inline_; }
  const T* ptr() const { return heap_ ? heap_ : inline_; }
  void grow_to(size_t n) {
    if (n > cap_) reserve(std::max(n, cap_ * 2));
  }
  void open_gap(size_t at, size_t n) {
    assert(at <= size_);
    grow_to(size_ + n);
    std::memmove(ptr() + at + n, ptr() + at, (size_ - at) * sizeof(T));
    size_ += n;
  }
  void release() {
    if (heap_) std::free(heap_);
    heap_ = nullptr;
    cap_ = N;
    size_ = 0;
  }
  void take(SmallVector& o) {
    if (o.heap_) {
      heap_ = o.heap_;
      cap_ = o.cap_;
      o.heap_ = nullptr;
      o.cap_ = N;
    } else {
      std::memcpy(inline_, o.inline_, o.size_ * sizeof(T));
    }
    size_ = o.size_;
    o.size_ = 0;
  }

  T inline_[N];
  T* heap_ = nullptr;
  size_t size_ = 0;
  size_t cap_ = N;
};

}  // namespace sarai
