//! The `word_enum!` macro: a fieldless enum with fixed numeric values and one word per value.
//!
//! The guest options ([`crate::cmdline`]) and the report protocol's enums ([`crate::report`])
//! are all such enums: their numbers travel in reports, their words on the command line, the
//! CLI and in JSON, and both are part of the protocol users depend on.

/// Defines a fieldless enum with the given representation (`u8`, `u16` or `u32`), explicit
/// discriminants and one word per variant, and implements:
///
/// - `ALL`: every value, in declaration order;
/// - `name`: the value's word (command line, CLI, JSON);
/// - `from_name`: the value with that word;
/// - `from_u8` / `from_u16` / `from_u32` (after the representation): the value with that
///   number, as a report carries it.
///
/// The enum derives `Debug, Clone, Copy, PartialEq, Eq`; further derives (`Default` with a
/// `#[default]` variant, `PartialOrd`, ...) go in its attributes.
///
/// ```text
/// word_enum! {
///     /// What a report carries.
///     pub enum Kind: u16 {
///         /// The bringup result.
///         Boot = 1 => "boot",
///     }
/// }
/// ```
macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $repr:ident {
            $($(#[$vmeta:meta])* $variant:ident = $value:literal => $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr($repr)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: [$name; [$($value),+].len()] = [$($name::$variant),+];

            /// The word used on the command line, CLI and JSON.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The value whose word is `s`.
            pub fn from_name(s: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.name() == s)
            }
        }

        $crate::word_enum::word_enum!(@from_repr $name, $repr);
    };
    (@from_repr $name:ident, u8) => {
        impl $name {
            /// The value numbered `v` (as a report carries it).
            pub fn from_u8(v: u8) -> Option<Self> {
                Self::ALL.into_iter().find(|x| *x as u8 == v)
            }
        }
    };
    (@from_repr $name:ident, u16) => {
        impl $name {
            /// The value numbered `v` (as a report carries it).
            pub fn from_u16(v: u16) -> Option<Self> {
                Self::ALL.into_iter().find(|x| *x as u16 == v)
            }
        }
    };
    (@from_repr $name:ident, u32) => {
        impl $name {
            /// The value numbered `v` (as a report carries it).
            pub fn from_u32(v: u32) -> Option<Self> {
                Self::ALL.into_iter().find(|x| *x as u32 == v)
            }
        }
    };
}

pub(crate) use word_enum;

#[cfg(test)]
mod tests {
    word_enum! {
        /// A test enum with gaps in its numbering and a wide representation.
        #[derive(Default)]
        pub enum Sample: u32 {
            /// One.
            One = 1 => "one",
            /// Seven.
            #[default]
            Seven = 7 => "seven",
        }
    }

    #[test]
    fn words_and_numbers_round_trip() {
        assert_eq!(Sample::ALL, [Sample::One, Sample::Seven]);
        for v in Sample::ALL {
            assert_eq!(Sample::from_name(v.name()), Some(v));
            assert_eq!(Sample::from_u32(v as u32), Some(v));
        }
        assert_eq!(Sample::from_u32(0), None);
        assert_eq!(Sample::from_name("eight"), None);
        assert_eq!(Sample::default(), Sample::Seven);
    }
}
