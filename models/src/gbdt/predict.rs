//! Fast inference: every tree flattened into one array of 32-byte nodes, leaves pointing at
//! themselves, and trees walked eight at a time in lockstep so that their independent loads
//! overlap (the latency of one tree's walk hides behind the others'); trees are grouped by depth
//! so that a group takes about the steps its trees need.

use super::tree::Tree;

/// One node of the flattened forest.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Node {
    /// Values ≤ `threshold` go left (for a leaf: unused).
    threshold: f64,
    /// The leaf's output (for an internal node: unused).
    value: f64,
    feature: u32,
    /// [right, left] as absolute node indices; a leaf points at itself.
    child: [u32; 2],
    default_left: bool,
}

/// Trees per lockstep group.
const LANES: usize = 8;

/// The forest, compiled for prediction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Compiled {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// Per group of [`LANES`] trees, the deepest tree's depth (steps to reach every leaf).
    group_depth: Vec<u32>,
}

impl Compiled {
    pub fn new(trees: &[Tree]) -> Compiled {
        // Trees of similar depth walk together, so that a group's lockstep takes about as many
        // steps as its trees need (a group costs its deepest tree's depth).
        let depths: Vec<usize> = trees.iter().map(Tree::depth).collect();
        let mut order: Vec<usize> = (0..trees.len()).collect();
        order.sort_by_key(|&i| (depths[i], i));
        let mut nodes = Vec::new();
        let mut roots = Vec::with_capacity(trees.len());
        for &i in &order {
            let t = &trees[i];
            let base = nodes.len() as u32;
            let internal = t.split_feature.len() as u32;
            roots.push(base);
            // Internal nodes first (index = base + node), then leaves (base + internal + leaf).
            let to_abs = |c: i32| if c >= 0 { base + c as u32 } else { base + internal + (!c) as u32 };
            for n in 0..t.split_feature.len() {
                nodes.push(Node {
                    threshold: t.threshold[n],
                    value: 0.0,
                    feature: t.split_feature[n],
                    child: [to_abs(t.right[n]), to_abs(t.left[n])],
                    default_left: t.default_left[n],
                });
            }
            for (l, &v) in t.leaf_value.iter().enumerate() {
                let me = base + internal + l as u32;
                nodes.push(Node { threshold: 0.0, value: v, feature: 0, child: [me, me], default_left: false });
            }
        }
        let group_depth = order.chunks(LANES).map(|g| g.iter().map(|&i| depths[i]).max().unwrap_or(0) as u32).collect();
        Compiled { nodes, roots, group_depth }
    }

    /// Σ over trees of the leaf `x` reaches (summed in the compiled order: trees by depth).
    #[inline]
    pub fn sum(&self, x: &[f64]) -> f64 {
        let nodes = &self.nodes[..];
        let mut total = 0.0;
        for (g, roots) in self.roots.chunks(LANES).enumerate() {
            let mut at = [0u32; LANES];
            at[..roots.len()].copy_from_slice(roots);
            // A full group walks a fixed-size array (the compiler unrolls the eight lanes); the
            // last, partial group the slice it has.
            if roots.len() == LANES {
                for _ in 0..self.group_depth[g] {
                    for a in at.iter_mut() {
                        let n = &nodes[*a as usize];
                        let v = x[n.feature as usize];
                        let left = (v <= n.threshold) | (v.is_nan() & n.default_left);
                        *a = n.child[left as usize];
                    }
                }
            } else {
                for _ in 0..self.group_depth[g] {
                    for a in at[..roots.len()].iter_mut() {
                        let n = &nodes[*a as usize];
                        let v = x[n.feature as usize];
                        let left = (v <= n.threshold) | (v.is_nan() & n.default_left);
                        *a = n.child[left as usize];
                    }
                }
            }
            for a in &at[..roots.len()] {
                total += nodes[*a as usize].value;
            }
        }
        total
    }
}
