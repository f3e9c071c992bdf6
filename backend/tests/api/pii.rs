//! PII at rest.
