//! One stable sort for the engine's sorts: a bottom-up merge sort of indices behind a `dyn`
//! comparison, so that every element type shares one sort. The standard library's sorts are
//! several KB of code per element type and comparison, which the wasm build would carry for each.

use std::cmp::Ordering;

/// Sorts `v` by `cmp`, stably (equal elements keep their order), in O(n log n).
pub(crate) fn sort_by<T>(v: &mut Vec<T>, mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let order = {
        let items = &*v;
        order_by(items.len(), &mut |a, b| cmp(&items[a], &items[b]))
    };
    let mut slots: Vec<Option<T>> = std::mem::take(v).into_iter().map(Some).collect();
    v.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

/// The indices `0..n` sorted stably by `cmp` on them.
pub(crate) fn order_by(n: usize, cmp: &mut dyn FnMut(usize, usize) -> Ordering) -> Vec<usize> {
    let mut src: Vec<usize> = (0..n).collect();
    if n < 2 {
        return src;
    }
    let mut dst = src.clone();
    let mut width = 1;
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut l, mut r) = (start, mid);
            for slot in &mut dst[start..end] {
                // The left run first among equals, so the sort is stable.
                let left = l < mid && (r >= end || cmp(src[l], src[r]).is_le());
                if left {
                    *slot = src[l];
                    l += 1;
                } else {
                    *slot = src[r];
                    r += 1;
                }
            }
            start = end;
        }
        std::mem::swap(&mut src, &mut dst);
        width *= 2;
    }
    src
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_stably_like_the_standard_sort() {
        for n in 0..40u64 {
            // Few distinct keys, so that equal keys are common; the index tells them apart.
            let v: Vec<(u64, u64)> = (0..n).map(|i| ((i * 7 + 3) % 5, i)).collect();
            let mut mine = v.clone();
            sort_by(&mut mine, |a, b| a.0.cmp(&b.0));
            let mut std_sorted = v;
            std_sorted.sort_by_key(|a| a.0);
            assert_eq!(mine, std_sorted);
        }
    }
}
