//! [`Small`], a sequence that keeps up to four items inline: the keys of a
//! multi-key request, which most often has two to four, without a heap
//! allocation.

/// Up to four items in place, more in a `Vec` (an empty `Vec` when there
/// are none, which allocates nothing either).
#[derive(Clone, Debug)]
pub(crate) enum Small<T> {
    One([T; 1]),
    Two([T; 2]),
    Three([T; 3]),
    Four([T; 4]),
    Heap(Vec<T>),
}

impl<T> Small<T> {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Small::One(items) => items,
            Small::Two(items) => items,
            Small::Three(items) => items,
            Small::Four(items) => items,
            Small::Heap(items) => items,
        }
    }

    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Small::One(items) => items,
            Small::Two(items) => items,
            Small::Three(items) => items,
            Small::Four(items) => items,
            Small::Heap(items) => items,
        }
    }
}

/// None, without allocating.
impl<T> Default for Small<T> {
    fn default() -> Self {
        Small::Heap(Vec::new())
    }
}

impl<T> FromIterator<T> for Small<T> {
    #[inline]
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        let Some(a) = iter.next() else {
            return Small::default();
        };
        let Some(b) = iter.next() else {
            return Small::One([a]);
        };
        let Some(c) = iter.next() else {
            return Small::Two([a, b]);
        };
        let Some(d) = iter.next() else {
            return Small::Three([a, b, c]);
        };
        let Some(e) = iter.next() else {
            return Small::Four([a, b, c, d]);
        };
        let mut items = Vec::with_capacity(5 + iter.size_hint().0);
        items.extend([a, b, c, d, e]);
        items.extend(iter);
        Small::Heap(items)
    }
}

impl<T> IntoIterator for Small<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    #[inline]
    fn into_iter(self) -> IntoIter<T> {
        match self {
            Small::One(items) => IntoIter::One(items.into_iter()),
            Small::Two(items) => IntoIter::Two(items.into_iter()),
            Small::Three(items) => IntoIter::Three(items.into_iter()),
            Small::Four(items) => IntoIter::Four(items.into_iter()),
            Small::Heap(items) => IntoIter::Heap(items.into_iter()),
        }
    }
}

/// The items of a [`Small`], by value.
pub(crate) enum IntoIter<T> {
    One(std::array::IntoIter<T, 1>),
    Two(std::array::IntoIter<T, 2>),
    Three(std::array::IntoIter<T, 3>),
    Four(std::array::IntoIter<T, 4>),
    Heap(std::vec::IntoIter<T>),
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        match self {
            IntoIter::One(items) => items.next(),
            IntoIter::Two(items) => items.next(),
            IntoIter::Three(items) => items.next(),
            IntoIter::Four(items) => items.next(),
            IntoIter::Heap(items) => items.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_four_items_stay_inline_in_order() {
        for len in 0..=6 {
            let small: Small<usize> = (0..len).collect();
            let inline = !matches!(small, Small::Heap(_));
            assert_eq!(inline, (1..=4).contains(&len), "{len} items");
            assert_eq!(small.as_slice(), (0..len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn into_iter_yields_every_item_in_order() {
        for len in 0..=6 {
            let small: Small<String> = (0..len).map(|n| n.to_string()).collect();
            let items: Vec<String> = small.into_iter().collect();
            let expected: Vec<String> = (0..len).map(|n| n.to_string()).collect();
            assert_eq!(items, expected);
        }
    }
}
