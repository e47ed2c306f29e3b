//! Open enums for protocol code points (exchange types, payload types, error codes …): the
//! values a codec names, plus `Unknown` for any other, so every message still decodes and
//! re-encodes to the same octets and a refusal or a log line can name what it saw. Shared by
//! the ike and bgp codecs.

/// Defines an open enum for a wire code point: the values this implementation names, plus
/// `Unknown` carrying any other value, so every message still decodes and re-encodes to the
/// same octets and a refusal can name what it refused.
#[macro_export]
macro_rules! code_points {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $variant:ident = $value:literal => $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)*
            /// A value not named here (kept as is).
            Unknown($repr),
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                match v {
                    $($value => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                match v {
                    $($name::$variant => $value,)*
                    $name::Unknown(other) => other,
                }
            }
        }

        impl std::fmt::Display for $name {
            /// The RFC's name, or the number for a value not named here.
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $($name::$variant => f.write_str($text),)*
                    $name::Unknown(v) => write!(f, "{} {v}", stringify!($name)),
                }
            }
        }
    };
}
