//! Tests of the PostgreSQL commands.
