//! ZAB atomic broadcast (see module docs once written).
