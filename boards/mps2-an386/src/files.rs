//! The files in flash: the same set the host's smoltcp tests serve (`tests/fixtures/smol/`), so
//! the same checks apply to the board. `StaticSource` lends them straight from flash.

use satchel_core::source::StaticFile;

include!("../../../tests/fixtures/smol/baked.rs");
