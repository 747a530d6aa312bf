//! History reads on PostgreSQL (issue 16): being written.
