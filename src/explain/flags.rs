//! Flag words: registers of named bits and multi-bit fields, and how a value or a change of
//! one reads (`PE|ET`, `+PE -NW -CD`, `CPL 0->3`). Shared by every explainer.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

/// One named part of a flag word: a single bit (`width` 1) or a multi-bit field.
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    pub shift: u32,
    pub width: u32,
    pub name: &'static str,
    /// Names of a multi-bit field's values, by value; `""` (or past the end) prints the number.
    pub values: &'static [&'static str],
    /// Whether a multi-bit field is listed when it is 0 (CPL=0 says something; IOPL=0 does not).
    pub show_zero: bool,
}

/// A register of named bits and fields.
#[derive(Debug, PartialEq, Eq)]
pub struct FlagWord {
    pub parts: &'static [Part],
    /// Bits that are architecturally fixed at 1 (EFLAGS bit 1, x87 FCW bit 6): not listed in a
    /// value; shown as `+bitN`/`-bitN` should they ever change.
    pub fixed: u64,
}

pub const fn bit(shift: u32, name: &'static str) -> Part {
    Part {
        shift,
        width: 1,
        name,
        values: &[],
        show_zero: false,
    }
}

pub const fn num(shift: u32, width: u32, name: &'static str, show_zero: bool) -> Part {
    Part {
        shift,
        width,
        name,
        values: &[],
        show_zero,
    }
}

pub const fn named(
    shift: u32,
    width: u32,
    name: &'static str,
    values: &'static [&'static str],
    show_zero: bool,
) -> Part {
    Part {
        shift,
        width,
        name,
        values,
        show_zero,
    }
}

impl Part {
    pub fn mask(&self) -> u64 {
        let ones = if self.width >= 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        };
        ones.checked_shl(self.shift).unwrap_or(0)
    }

    pub fn get(&self, word: u64) -> u64 {
        (word & self.mask()).checked_shr(self.shift).unwrap_or(0)
    }

    pub fn value_text(&self, v: u64) -> String {
        usize::try_from(v)
            .ok()
            .and_then(|i| self.values.get(i))
            .filter(|s| !s.is_empty())
            .map_or_else(|| v.to_string(), |s| (*s).to_string())
    }
}

impl FlagWord {
    pub fn named_mask(&self) -> u64 {
        self.parts.iter().fold(0, |m, p| m | p.mask())
    }
}

/// `value` as its set names joined by `|`, in bit order; `none` when nothing is set.
pub fn render_value(word: &FlagWord, value: u64) -> String {
    render_words(&[word], value)
}

/// [`render_value`] over words that name disjoint bits of one register (virtio's transport
/// and device feature bits).
pub fn render_words(words: &[&FlagWord], value: u64) -> String {
    let mut tokens: Vec<(u32, String)> = Vec::new();
    for p in words.iter().flat_map(|w| w.parts) {
        let v = p.get(value);
        if p.width == 1 {
            if v != 0 {
                tokens.push((p.shift, p.name.to_string()));
            }
        } else if v != 0 || p.show_zero {
            tokens.push((p.shift, format!("{}={}", p.name, p.value_text(v))));
        }
    }
    let (named, fixed) = masks(words);
    let unnamed = value & !named & !fixed;
    tokens.extend(bits_of(unnamed).map(|b| (b, format!("bit{b}"))));
    join_in_bit_order(tokens, "|", "none")
}

/// The bits set (`+NAME`) and cleared (`-NAME`) and the fields changed (`NAME old->new`) from
/// `old` to `new`, in bit order, space separated; `unchanged` when equal.
pub fn render_change(word: &FlagWord, old: u64, new: u64) -> String {
    change_words(&[word], old, new)
}

/// [`render_change`] over words that name disjoint bits of one register.
pub fn change_words(words: &[&FlagWord], old: u64, new: u64) -> String {
    let mut tokens: Vec<(u32, String)> = Vec::new();
    for p in words.iter().flat_map(|w| w.parts) {
        let (o, n) = (p.get(old), p.get(new));
        if o == n {
            continue;
        }
        let token = if p.width == 1 {
            format!("{}{}", if n != 0 { '+' } else { '-' }, p.name)
        } else {
            format!("{} {}->{}", p.name, p.value_text(o), p.value_text(n))
        };
        tokens.push((p.shift, token));
    }
    let unnamed = (old ^ new) & !masks(words).0;
    tokens.extend(bits_of(unnamed).map(|b| {
        let sign = if new.checked_shr(b).unwrap_or(0) & 1 == 1 {
            '+'
        } else {
            '-'
        };
        (b, format!("{sign}bit{b}"))
    }));
    join_in_bit_order(tokens, " ", "unchanged")
}

/// The bits the words name, and those fixed at 1.
fn masks(words: &[&FlagWord]) -> (u64, u64) {
    words
        .iter()
        .fold((0, 0), |(n, f), w| (n | w.named_mask(), f | w.fixed))
}

/// Positions of the set bits of `v`, lowest first.
fn bits_of(v: u64) -> impl Iterator<Item = u32> {
    (0..64u32).filter(move |b| v.checked_shr(*b).unwrap_or(0) & 1 == 1)
}

fn join_in_bit_order(mut tokens: Vec<(u32, String)>, sep: &str, empty: &str) -> String {
    if tokens.is_empty() {
        return empty.to_string();
    }
    tokens.sort_by_key(|(pos, _)| *pos);
    tokens
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(sep)
}
