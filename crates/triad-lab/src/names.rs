//! [`names!`]: an experiment's table of the names it records and looks up, in one place, and
//! [`Named`], what code written for any such table sees of it.

/// A table declared by [`names!`].
pub(crate) trait Named: Copy + 'static {
    /// Every variant, in table order.
    fn all() -> &'static [Self];
    /// Its name in the report.
    fn name(self) -> &'static str;
}

/// Declares a `Copy` enum whose variants each stand for a name in the report — a measurement's
/// name, or the part of one that varies — with every name written once, in one table:
/// `ALL` lists the variants in table order, `name()` gives each one's name (and the enum is
/// [`Named`]).
///
/// The measure step records under `Key::Variant.name()`, the judge step looks up the same, and
/// a CPython script that measures the same quantity prints the same name.
macro_rules! names {
    (
        $(#[$meta:meta])*
        $vis:vis enum $enum:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $name:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $enum {
            $( $(#[$variant_meta])* $variant ),+
        }

        impl $enum {
            /// Every variant, in table order.
            #[allow(dead_code, reason = "not every table is walked in order")]
            $vis const ALL: &'static [$enum] = &[$($enum::$variant),+];

            /// The name the report uses for it.
            $vis const fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name),+
                }
            }
        }

        impl $crate::names::Named for $enum {
            fn all() -> &'static [Self] {
                Self::ALL
            }

            fn name(self) -> &'static str {
                Self::name(self)
            }
        }
    };
}

pub(crate) use names;

#[cfg(test)]
mod tests {
    names! {
        /// Two quantities.
        enum Quantity {
            /// Time taken.
            Time => "total time",
            Memory => "peak memory",
        }
    }

    #[test]
    fn the_table_names_every_variant_in_order() {
        use super::Named;
        assert_eq!(Quantity::ALL, [Quantity::Time, Quantity::Memory]);
        assert_eq!(Quantity::Time.name(), "total time");
        assert_eq!(Quantity::Memory.name(), "peak memory");
        assert_eq!(<Quantity as Named>::all(), Quantity::ALL);
        assert_eq!(Named::name(Quantity::Memory), "peak memory");
    }
}
