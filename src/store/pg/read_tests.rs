//! Tests of the PostgreSQL reads.
