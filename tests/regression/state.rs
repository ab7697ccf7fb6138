//! Regressions in records missing, corrupt or claimed by another project.
