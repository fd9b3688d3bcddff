pub mod change_card;
pub mod feed;
pub mod files;
pub mod history;
pub mod nav;
pub mod severity;
pub mod status;
pub mod time;
