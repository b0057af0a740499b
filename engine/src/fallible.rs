//! Heap allocations made at a worker's start and sized by its limits (its
//! connection slots, its receive buffers), made so that a refusal is an
//! error rather than the allocator's abort ("memory allocation of N bytes
//! failed", `SIGABRT`). Under an address-space limit (`ulimit -v`,
//! `RLIMIT_AS`) that the worker's reservations fit but these do not, the
//! abort looked like a crash to the master, which restarted the worker
//! forever; the error is reported and told apart (see `refused.rs`).
//!
//! Only for start: the loop never allocates.

use std::alloc::Layout;
use std::io;

/// Types for which all-zero bytes are a valid value, so a slice of them can
/// come zeroed from the allocator (fresh pages for a large one, not touched
/// here: what `vec![0; n]` does).
///
/// # Safety
/// Implement only for types whose every all-zero bit pattern is a valid value.
pub(crate) unsafe trait Zeroable {}

// SAFETY: zero is a valid value of each integer type, and `false` is a zero byte.
unsafe impl Zeroable for u8 {}
// SAFETY: as above.
unsafe impl Zeroable for u16 {}
// SAFETY: as above.
unsafe impl Zeroable for u32 {}
// SAFETY: as above.
unsafe impl Zeroable for u64 {}
// SAFETY: as above.
unsafe impl Zeroable for bool {}

/// The error for `bytes` the allocator refused.
fn refused(bytes: usize) -> io::Error {
    io::Error::new(io::ErrorKind::OutOfMemory, format!("the allocator refused {bytes} bytes"))
}

/// The error for `len` values of `size` bytes, more than an allocation can hold.
fn too_large(len: usize, size: usize) -> io::Error {
    io::Error::new(io::ErrorKind::OutOfMemory, format!("{len} x {size} bytes is more than one allocation can hold"))
}

/// An empty vector with room for `capacity` values.
pub(crate) fn with_capacity<T>(capacity: usize) -> io::Result<Vec<T>> {
    let mut vec = Vec::new();
    vec.try_reserve_exact(capacity).map_err(|_| refused(capacity.saturating_mul(size_of::<T>())))?;
    Ok(vec)
}

/// `len` copies of `value`.
pub(crate) fn filled<T: Clone>(len: usize, value: T) -> io::Result<Box<[T]>> {
    let mut vec = with_capacity(len)?;
    vec.resize(len, value);
    Ok(vec.into_boxed_slice())
}

/// A copy of `values`.
pub(crate) fn copied<T: Copy>(values: &[T]) -> io::Result<Box<[T]>> {
    let mut vec = with_capacity(values.len())?;
    vec.extend_from_slice(values);
    Ok(vec.into_boxed_slice())
}

/// `len` zeroed values, as `vec![0; len]` makes them.
pub(crate) fn zeroed<T: Zeroable>(len: usize) -> io::Result<Box<[T]>> {
    let layout = Layout::array::<T>(len).map_err(|_| too_large(len, size_of::<T>()))?;
    if layout.size() == 0 {
        return Ok(Box::default());
    }
    // SAFETY: the layout's size is not zero.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        return Err(refused(layout.size()));
    }
    // SAFETY: `ptr` was allocated by the global allocator with the layout of
    // `len` values of `T`, which is the layout a `Box<[T]>` of `len` frees
    // with; its bytes are zero, a valid `T` (`Zeroable`); nothing else owns it.
    Ok(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_fits_is_made_as_the_infallible_ones_make_it() {
        assert_eq!(&*zeroed::<u32>(3).expect("zeroed"), &[0, 0, 0]);
        assert!(zeroed::<u8>(0).expect("empty").is_empty());
        assert_eq!(&*filled(2, u32::MAX).expect("filled"), &[u32::MAX, u32::MAX]);
        assert!(with_capacity::<u64>(5).expect("room").capacity() >= 5);
        assert_eq!(&*copied(&[1u8, 2]).expect("copied"), &[1, 2]);
    }

    #[test]
    fn what_cannot_fit_is_an_error_not_an_abort() {
        let e = zeroed::<u64>(usize::MAX / 4).expect_err("more than the address space");
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
        // Within what a layout can describe, but far more than any machine has.
        let e = zeroed::<u8>(isize::MAX as usize - 4096).expect_err("refused");
        assert!(e.to_string().starts_with("the allocator refused"), "{e}");
        let e = with_capacity::<u8>(isize::MAX as usize - 4096).expect_err("refused");
        assert!(e.to_string().starts_with("the allocator refused"), "{e}");
    }
}
