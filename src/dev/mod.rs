//! The dev loop (`serve --dev`): the framework folders are watched, and a framework whose files
//! change gets its warm parents replaced, so that its next task runs the code as saved; and a
//! playground page at `/` to talk to the agents. Neither exists outside dev mode. Internals:
//! docs/dev-loop.md.

mod page;
mod watch;

pub use page::{frameworks, playground};
pub use watch::{is_ignored, watch};
