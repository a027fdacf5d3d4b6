//! One work budget per decode, tied to the size of the input: what a hostile description
//! can make us build (nodes for fields and elements that take no bytes, nested arrays of
//! them, pages an export claims) is bounded across the whole decode, not per array or per
//! block, where nesting multiplies the bounds.
//!
//! Real inputs stay far below it: the device-heavy q35 fixture (0.8 MB) builds 72,000
//! nodes, 0.09 a byte; a 4 GiB guest's export holds 1M pages in a few KB of runs.

use crate::error::ErrorKind;

/// Nodes any input may build, however small.
const BASE_NODES: u64 = 1 << 20;

/// Pages any export may claim, however small: a 256 GiB guest of 4 KiB pages, 512 MiB of
/// digests. An export of a mostly-zero guest holds millions of pages in a few runs, so its
/// size cannot bound them; this does.
const BASE_PAGES: u64 = 1 << 26;

/// What each input byte may add.
const PER_BYTE: u64 = 8;

/// A count of things built, with its limit.
#[derive(Debug, Clone)]
pub struct Budget {
    what: &'static str,
    limit: u64,
    spent: u64,
}

impl Budget {
    /// The nodes (fields, elements, structs) one decode of `input_len` bytes may build.
    pub fn nodes(input_len: u64) -> Budget {
        Budget::new("nodes", BASE_NODES, input_len)
    }

    /// The pages one export of `input_len` bytes may claim, across all its RAM blocks.
    pub fn pages(input_len: u64) -> Budget {
        Budget::new("pages", BASE_PAGES, input_len)
    }

    fn new(what: &'static str, base: u64, input_len: u64) -> Budget {
        Budget {
            what,
            limit: base.saturating_add(PER_BYTE.saturating_mul(input_len)),
            spent: 0,
        }
    }

    /// Takes `n` more from the budget, or says it is spent.
    pub fn spend(&mut self, n: u64) -> Result<(), ErrorKind> {
        self.spent = self.spent.saturating_add(n);
        if self.spent > self.limit {
            return Err(ErrorKind::OverBudget {
                what: self.what,
                limit: self.limit,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spent_across_calls_and_tied_to_the_input() {
        let mut b = Budget::nodes(100);
        assert!(b.spend(BASE_NODES).is_ok());
        assert!(b.spend(800).is_ok());
        assert_eq!(
            b.spend(1),
            Err(ErrorKind::OverBudget {
                what: "nodes",
                limit: BASE_NODES + 800
            })
        );
    }
}
