//! Field forms that stay as they are in a human-readable format and are
//! compact in a binary one (the read-model snapshot, ADR 0034): for use as
//! `#[serde(with = "...")]` on the read model's state. Events never go
//! through them; their JSON is the log's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A time: RFC 3339 text in JSON, seconds and nanoseconds since the epoch
/// in a binary form (no text to parse).
pub mod time {
    use super::*;

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return at.serialize(serializer);
        }
        (at.timestamp(), at.timestamp_subsec_nanos()).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        if deserializer.is_human_readable() {
            return DateTime::deserialize(deserializer);
        }
        let (secs, nanos) = <(i64, u32)>::deserialize(deserializer)?;
        DateTime::from_timestamp(secs, nanos)
            .ok_or_else(|| serde::de::Error::custom("a time out of range"))
    }
}

/// A value as its own JSON in a binary form, for the few internally tagged
/// enums a binary format cannot read back (it has no types to look at):
/// the event that ended an upload request, kept for an hour.
pub mod as_json {
    use super::*;

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return value.serialize(serializer);
        }
        let json = serde_json::to_vec(value).map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(&json)
    }

    pub fn deserialize<'de, T: serde::de::DeserializeOwned, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        if deserializer.is_human_readable() {
            return T::deserialize(deserializer);
        }
        let json = <&[u8]>::deserialize(deserializer)?;
        serde_json::from_slice(json).map_err(|_| serde::de::Error::custom("an unreadable event"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Held {
        #[serde(with = "time")]
        at: DateTime<Utc>,
        #[serde(with = "as_json")]
        event: Tagged,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    enum Tagged {
        Ended { reason: String },
    }

    fn held() -> Held {
        Held {
            at: DateTime::from_timestamp(1_764_000_000, 123_456_789).unwrap(),
            event: Tagged::Ended {
                reason: "expired".into(),
            },
        }
    }

    #[test]
    fn given_json_when_written_then_the_forms_are_the_fields_own() {
        let json = serde_json::to_value(held()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "at": "2025-11-24T16:00:00.123456789Z",
                "event": {"type": "Ended", "reason": "expired"},
            })
        );
        assert_eq!(serde_json::from_value::<Held>(json).unwrap(), held());
    }

    #[test]
    fn given_a_binary_form_when_written_then_it_reads_back_and_holds_no_time_text() {
        let bytes = postcard::to_allocvec(&held()).unwrap();
        assert_eq!(postcard::from_bytes::<Held>(&bytes).unwrap(), held());
        assert!(
            !bytes.windows(4).any(|w| w == b"2025"),
            "the time is held as numbers"
        );
        // (the tagged enum, which postcard alone could not read back)
        let plain = postcard::to_allocvec(&held().event).unwrap();
        assert!(postcard::from_bytes::<Tagged>(&plain).is_err());
    }

    #[test]
    fn given_a_time_out_of_range_when_read_then_it_is_an_error() {
        let bytes = postcard::to_allocvec(&(i64::MAX, 0u32)).unwrap();
        #[derive(Debug, Deserialize)]
        struct At(
            #[serde(with = "time")]
            #[allow(dead_code)]
            DateTime<Utc>,
        );
        assert!(postcard::from_bytes::<At>(&bytes).is_err());
    }
}
