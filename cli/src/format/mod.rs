//! Pure text/JSON rendering of API values, kept apart from I/O so every
//! output format is unit-tested.

pub mod device;
pub mod error;
pub mod event;
pub mod fanout;
pub mod reply;
pub mod table;
pub mod time;
