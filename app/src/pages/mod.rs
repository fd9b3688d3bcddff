pub mod access;
pub mod audit;
pub mod dashboard;
pub mod history;
pub mod legacy_move;
pub mod login;
pub mod schema;
pub mod timeline;
