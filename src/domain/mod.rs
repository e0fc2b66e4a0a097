//! Pure types and rules: no I/O, no async. Values of these types are valid by construction.

pub mod audit;
pub mod case;
pub mod cause;
pub mod client;
pub mod email;
pub mod facility;
pub mod geo;
pub mod grid;
pub mod ids;
pub mod language;
pub mod outage;
pub mod phone;
pub mod planned;
pub mod quiet;
pub mod recipients;
pub mod scope;
pub mod selector;
pub mod sender_id;
pub mod service;
pub mod sms_text;
pub mod transfer;
pub mod when;
pub mod whole;
