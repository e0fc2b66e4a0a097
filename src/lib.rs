//! Varsel: outage notifications for Nordic utilities.
//!
//! `domain` holds the pure types and rules; `store` the persistence on SQLite or PostgreSQL;
//! `web` the HTTP API and pages; `registration` and `cis` the use cases they share.

pub mod app;
pub mod audit;
pub mod bench;
pub mod cases;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod directory;
pub mod dispatch;
pub mod domain;
pub mod files;
pub mod i18n;
pub mod import;
pub mod mail;
pub mod outages;
pub mod postcards;
pub mod privacy;
pub mod registration;
pub mod rights;
pub mod rotation;
pub mod scheduler;
pub mod state;
pub mod store;
pub mod texts;
pub mod throttle;
pub mod web;
