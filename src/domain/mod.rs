//! Pure types and rules: no I/O, no async. Values of these types are valid by construction.

pub mod email;
pub mod facility;
pub mod ids;
pub mod language;
pub mod phone;
pub mod scope;
pub mod sender_id;
pub mod service;
