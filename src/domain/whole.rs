//! Whole numbers as JSON may write them. JSON has one number type and JSON Schema's
//! `integer` holds `5.0` as well as `5`, so a client, or a generator such as Schemathesis,
//! may send either; serde alone refuses the first for an integer field. These readers take
//! both and refuse a fraction or a value out of range with a message naming the range.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

/// For `#[serde(deserialize_with = "whole::required")]` on an integer field.
pub fn required<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    d.deserialize_any(Whole(PhantomData))
}

/// For `#[serde(default, deserialize_with = "whole::optional")]` on an `Option` field: null
/// and absent are `None`.
pub fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    d.deserialize_option(Maybe(PhantomData))
}

struct Whole<T>(PhantomData<T>);

impl<T> Whole<T>
where
    T: TryFrom<i64> + TryFrom<u64>,
{
    fn out_of_range<E: de::Error>(shown: impl fmt::Display) -> E {
        E::custom(format_args!(
            "{shown} is out of range for {}",
            std::any::type_name::<T>()
        ))
    }
}

impl<T> Visitor<'_> for Whole<T>
where
    T: TryFrom<i64> + TryFrom<u64>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a whole number ({})", std::any::type_name::<T>())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| Self::out_of_range(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| Self::out_of_range(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // Every i64 rounds into this range, so the cast below cannot saturate.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if v.fract() != 0.0 || !v.is_finite() {
            return Err(E::custom(format_args!("{v} is not a whole number")));
        }
        if !(-LIMIT..LIMIT).contains(&v) {
            return Err(Self::out_of_range(v));
        }
        self.visit_i64(v as i64)
    }
}

struct Maybe<T>(PhantomData<T>);

impl<'de, T> Visitor<'de> for Maybe<T>
where
    T: TryFrom<i64> + TryFrom<u64>,
{
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a whole number ({}) or null", std::any::type_name::<T>())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        required(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "super::required")]
        at: i64,
        #[serde(default, deserialize_with = "super::optional")]
        from: Option<u32>,
    }

    fn read(json: &str) -> Result<Body, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_written_either_way_are_read() {
        assert_eq!(
            read(r#"{"at": 1.0, "from": 4912.0}"#),
            Ok(Body {
                at: 1,
                from: Some(4912)
            })
        );
        assert_eq!(
            read(r#"{"at": -4014610462, "from": null}"#),
            Ok(Body {
                at: -4_014_610_462,
                from: None
            })
        );
        assert_eq!(read(r#"{"at": 0}"#), Ok(Body { at: 0, from: None }));
    }

    #[test]
    fn fractions_and_out_of_range_values_are_refused_by_name() {
        let e = read(r#"{"at": 1.5}"#).unwrap_err();
        assert!(e.contains("1.5 is not a whole number"), "{e}");
        let e = read(r#"{"at": 0, "from": -1}"#).unwrap_err();
        assert!(e.contains("-1 is out of range for u32"), "{e}");
        let e = read(r#"{"at": 0, "from": 4294967296.0}"#).unwrap_err();
        assert!(e.contains("out of range for u32"), "{e}");
        let e = read(r#"{"at": 1e300}"#).unwrap_err();
        assert!(e.contains("out of range for i64"), "{e}");
        let e = read(r#"{"at": "5"}"#).unwrap_err();
        assert!(e.contains("a whole number"), "{e}");
    }

    proptest! {
        #[test]
        fn any_i64_reads_the_same_as_integer_and_never_panics_as_float(n: i64, f: f64) {
            prop_assert_eq!(read(&format!(r#"{{"at": {n}}}"#)).map(|b| b.at), Ok(n));
            // Whatever float arrives, the reader answers without panicking.
            let _ = read(&format!(r#"{{"at": {f:?}}}"#));
        }
    }
}
