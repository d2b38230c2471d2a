//! FAQ knowledge base and matcher.
