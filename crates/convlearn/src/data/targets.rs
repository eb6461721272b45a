//! What each image is labelled with: one class (softmax + cross-entropy) or a set of tags
//! (sigmoid + binary cross-entropy). The kind of labels decides the loss; the user never chooses it.

/// Labels owned by a data set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// One class index per item.
    Classes(Vec<usize>),
    /// Any number of tag indices per item (multi-label).
    Tags(Vec<Vec<usize>>),
}

/// A borrowed view of [`Targets`], as an [`ImageSource`](super::ImageSource) hands them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Labels<'a> {
    /// One class index per item.
    Classes(&'a [usize]),
    /// Tag indices per item.
    Tags(&'a [Vec<usize>]),
}

impl From<Vec<usize>> for Targets {
    fn from(classes: Vec<usize>) -> Self {
        Targets::Classes(classes)
    }
}

impl Targets {
    /// The borrowed view.
    pub fn view(&self) -> Labels<'_> {
        match self {
            Targets::Classes(c) => Labels::Classes(c),
            Targets::Tags(t) => Labels::Tags(t),
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.view().len()
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the labels of `item` of `from` (which must be of the same kind).
    pub fn push_from(&mut self, from: Labels<'_>, item: usize) {
        match (self, from) {
            (Targets::Classes(v), Labels::Classes(c)) => v.push(c[item]),
            (Targets::Tags(v), Labels::Tags(t)) => v.push(t[item].clone()),
            _ => panic!("single-label and multi-label targets cannot be mixed"),
        }
    }

    /// An empty set of the same kind.
    pub fn empty_like(&self) -> Targets {
        match self {
            Targets::Classes(_) => Targets::Classes(Vec::new()),
            Targets::Tags(_) => Targets::Tags(Vec::new()),
        }
    }
}

impl<'a> Labels<'a> {
    /// Number of items.
    pub fn len(self) -> usize {
        match self {
            Labels::Classes(c) => c.len(),
            Labels::Tags(t) => t.len(),
        }
    }

    /// True when there are no items.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// True for tags (several labels per item).
    pub fn is_multi_label(self) -> bool {
        matches!(self, Labels::Tags(_))
    }

    /// The class indices, for single-label data.
    pub fn classes(self) -> Option<&'a [usize]> {
        match self {
            Labels::Classes(c) => Some(c),
            Labels::Tags(_) => None,
        }
    }

    /// The labels of the items at `indices`, owned.
    pub fn select(self, indices: &[usize]) -> Targets {
        match self {
            Labels::Classes(c) => Targets::Classes(indices.iter().map(|&i| c[i]).collect()),
            Labels::Tags(t) => Targets::Tags(indices.iter().map(|&i| t[i].clone()).collect()),
        }
    }

    /// The labels of the items in `range`, owned.
    pub fn range(self, range: std::ops::Range<usize>) -> Targets {
        match self {
            Labels::Classes(c) => Targets::Classes(c[range].to_vec()),
            Labels::Tags(t) => Targets::Tags(t[range].to_vec()),
        }
    }

    /// Item `i` as a 0/1 row over `n` outputs (one-hot for a class, multi-hot for tags).
    pub fn multi_hot(self, i: usize, n: usize) -> Vec<f32> {
        let mut row = vec![0.0; n];
        match self {
            Labels::Classes(c) => row[c[i]] = 1.0,
            Labels::Tags(t) => t[i].iter().for_each(|&k| row[k] = 1.0),
        }
        row
    }

    /// The names of item `i`'s labels, space-separated.
    pub fn describe(self, i: usize, names: &[String]) -> String {
        match self {
            Labels::Classes(c) => names[c[i]].clone(),
            Labels::Tags(t) => t[i]
                .iter()
                .map(|&k| names[k].as_str())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_select_and_encode() {
        let tags = Targets::Tags(vec![vec![0, 2], vec![], vec![1]]);
        let v = tags.view();
        assert!(v.is_multi_label());
        assert_eq!(v.multi_hot(0, 3), vec![1.0, 0.0, 1.0]);
        assert_eq!(v.select(&[2, 0]), Targets::Tags(vec![vec![1], vec![0, 2]]));
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(v.describe(0, &names), "a c");
        let classes = Targets::Classes(vec![1, 0]);
        assert_eq!(classes.view().multi_hot(0, 2), vec![0.0, 1.0]);
        assert_eq!(classes.view().classes(), Some(&[1, 0][..]));
    }
}
