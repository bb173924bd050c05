//! [`Small`], a sequence that keeps up to four items inline, and
//! [`Pairs`], two sequences of one length that do so under one tag: the
//! keys of a multi-key request and their claims, most often two to four,
//! without a heap allocation.

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
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Small::One(items) => items,
            Small::Two(items) => items,
            Small::Three(items) => items,
            Small::Four(items) => items,
            Small::Heap(items) => items,
        }
    }

    /// Pairs each item with `f` of it, in place.
    #[inline]
    pub(crate) fn paired<B>(self, mut f: impl FnMut(&T) -> B) -> Pairs<T, B> {
        match self {
            Small::One([a]) => {
                let fa = f(&a);
                Pairs::One([a], [fa])
            }
            Small::Two([a, b]) => {
                let (fa, fb) = (f(&a), f(&b));
                Pairs::Two([a, b], [fa, fb])
            }
            Small::Three([a, b, c]) => {
                let (fa, fb, fc) = (f(&a), f(&b), f(&c));
                Pairs::Three([a, b, c], [fa, fb, fc])
            }
            Small::Four([a, b, c, d]) => {
                let (fa, fb, fc, fd) = (f(&a), f(&b), f(&c), f(&d));
                Pairs::Four([a, b, c, d], [fa, fb, fc, fd])
            }
            Small::Heap(items) => {
                let paired = items.iter().map(f).collect();
                Pairs::Heap(items, paired)
            }
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

/// Two sequences of one length, items paired by position (a request's
/// keys and its claim on each): up to four pairs in place, more in two
/// `Vec`s. One tag for both, so that reaching both slices takes one
/// `match`, where two `Small`s took two (see ARCHITECTURE.md, "What a
/// multi-key request costs").
#[derive(Debug)]
pub(crate) enum Pairs<A, B> {
    /// None: what a request leaves behind once its guard took its keys,
    /// written with one store.
    Empty,
    One([A; 1], [B; 1]),
    Two([A; 2], [B; 2]),
    Three([A; 3], [B; 3]),
    Four([A; 4], [B; 4]),
    Heap(Vec<A>, Vec<B>),
}

impl<A, B> Pairs<A, B> {
    #[inline]
    pub(crate) fn as_slices(&self) -> (&[A], &[B]) {
        match self {
            Pairs::One(a, b) => (a, b),
            Pairs::Two(a, b) => (a, b),
            Pairs::Three(a, b) => (a, b),
            Pairs::Four(a, b) => (a, b),
            Pairs::Heap(a, b) => (a, b),
            Pairs::Empty => (&[], &[]),
        }
    }

    #[inline]
    pub(crate) fn as_mut_slices(&mut self) -> (&mut [A], &mut [B]) {
        match self {
            Pairs::One(a, b) => (a, b),
            Pairs::Two(a, b) => (a, b),
            Pairs::Three(a, b) => (a, b),
            Pairs::Four(a, b) => (a, b),
            Pairs::Heap(a, b) => (a, b),
            Pairs::Empty => (&mut [], &mut []),
        }
    }

    /// The first items of each pair.
    #[inline]
    pub(crate) fn firsts(&self) -> &[A] {
        self.as_slices().0
    }

    /// Each pair, by reference.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&A, &B)> {
        let (a, b) = self.as_slices();
        a.iter().zip(b)
    }

    /// The pairs as two `Small`s, for moving the items out.
    fn split(self) -> (Small<A>, Small<B>) {
        match self {
            Pairs::One(a, b) => (Small::One(a), Small::One(b)),
            Pairs::Two(a, b) => (Small::Two(a), Small::Two(b)),
            Pairs::Three(a, b) => (Small::Three(a), Small::Three(b)),
            Pairs::Four(a, b) => (Small::Four(a), Small::Four(b)),
            Pairs::Heap(a, b) => (Small::Heap(a), Small::Heap(b)),
            Pairs::Empty => (Small::default(), Small::default()),
        }
    }
}

/// None, without allocating.
impl<A, B> Default for Pairs<A, B> {
    fn default() -> Self {
        Pairs::Empty
    }
}

impl<A, B> FromIterator<(A, B)> for Pairs<A, B> {
    #[inline]
    fn from_iter<I: IntoIterator<Item = (A, B)>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        let Some((a1, b1)) = iter.next() else {
            return Pairs::default();
        };
        let Some((a2, b2)) = iter.next() else {
            return Pairs::One([a1], [b1]);
        };
        let Some((a3, b3)) = iter.next() else {
            return Pairs::Two([a1, a2], [b1, b2]);
        };
        let Some((a4, b4)) = iter.next() else {
            return Pairs::Three([a1, a2, a3], [b1, b2, b3]);
        };
        let Some((a5, b5)) = iter.next() else {
            return Pairs::Four([a1, a2, a3, a4], [b1, b2, b3, b4]);
        };
        let capacity = 5 + iter.size_hint().0;
        let mut items = (Vec::with_capacity(capacity), Vec::with_capacity(capacity));
        items.0.extend([a1, a2, a3, a4, a5]);
        items.1.extend([b1, b2, b3, b4, b5]);
        items.extend(iter);
        Pairs::Heap(items.0, items.1)
    }
}

impl<A, B> IntoIterator for Pairs<A, B> {
    type Item = (A, B);
    type IntoIter = std::iter::Zip<IntoIter<A>, IntoIter<B>>;

    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        let (a, b) = self.split();
        a.into_iter().zip(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` numbers, each with its decimal text.
    fn numbered(len: usize) -> Vec<(usize, String)> {
        (0..len).map(|n| (n, n.to_string())).collect()
    }

    #[test]
    fn pairs_up_to_four_stay_inline_in_order() {
        for len in 0..=6 {
            let pairs: Pairs<usize, String> = numbered(len).into_iter().collect();
            let inline = !matches!(pairs, Pairs::Heap(..) | Pairs::Empty);
            assert_eq!(inline, (1..=4).contains(&len), "{len} pairs");
            assert_eq!(matches!(pairs, Pairs::Empty), len == 0);
            let (numbers, texts): (Vec<_>, Vec<_>) = numbered(len).into_iter().unzip();
            assert_eq!(pairs.as_slices(), (&numbers[..], &texts[..]));
            assert_eq!(pairs.into_iter().collect::<Vec<_>>(), numbered(len));
        }
    }

    #[test]
    fn five_pairs_or_more_take_one_allocation_a_side() {
        let pairs: Pairs<u8, u16> = (0..7).map(|n| (n, u16::from(n))).collect();
        let Pairs::Heap(a, b) = pairs else {
            panic!("seven pairs live on the heap");
        };
        // Room for the five taken first and the two the iterator promised.
        assert_eq!((a.capacity(), b.capacity()), (7, 7));
    }

    #[test]
    fn paired_keeps_each_item_with_its_value() {
        for len in 0..=6 {
            let small: Small<usize> = (0..len).collect();
            let pairs = small.paired(|n| n.to_string());
            assert_eq!(matches!(pairs, Pairs::Heap(..)), len == 0 || len > 4);
            assert_eq!(pairs.into_iter().collect::<Vec<_>>(), numbered(len));
        }
    }

    #[test]
    fn up_to_four_items_stay_inline_in_order() {
        for len in 0..=6 {
            let mut small: Small<usize> = (0..len).collect();
            let inline = !matches!(small, Small::Heap(_));
            assert_eq!(inline, (1..=4).contains(&len), "{len} items");
            assert_eq!(small.as_mut_slice(), (0..len).collect::<Vec<_>>());
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
