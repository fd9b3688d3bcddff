pub mod access;
pub mod audit;
pub mod dashboard;
pub mod history;
pub mod login;
pub mod migration;
pub mod schema;
pub mod timeline;
