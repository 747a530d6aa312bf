//! `disk_sizes = [25, 50, 100, 250]`: a rule that grows the instance's extra disk.

use toml_span::value::{Value, ValueInner};

use super::DISK_SIZES;
use super::load::{Loader, article};

impl Loader<'_> {
    /// The sizes of a `disk_sizes` rule: non-empty, strictly increasing, each one CloudAMQP
    /// offers (cloudamqp-api.md, "Disk resize"), never 0 (where every disk starts).
    pub(super) fn disk_sizes(&mut self, mut value: Value<'_>, ctx: &str) -> Option<Vec<u32>> {
        let span = value.span;
        let offered = DISK_SIZES
            .iter()
            .skip(1)
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let items = match value.take() {
            ValueInner::Array(items) => items,
            other => {
                self.error(
                    span,
                    Some(ctx),
                    format!(
                        "`disk_sizes` must be a list of sizes in GB, smallest first, such as [25, 50, 100], not {}",
                        article(&other)
                    ),
                );
                return None;
            }
        };
        if items.is_empty() {
            self.error(
                span,
                Some(ctx),
                format!("`disk_sizes` is empty; list the extra disk sizes to grow to, smallest first (CloudAMQP offers {offered} GB)"),
            );
            return None;
        }
        let mut sizes = Vec::with_capacity(items.len());
        let mut valid = true;
        for item in items {
            let size = match item.as_ref() {
                ValueInner::Integer(n) => u32::try_from(*n).ok(),
                _ => None,
            };
            let Some(size) = size.filter(|size| DISK_SIZES.contains(size) && *size > 0) else {
                let what = match item.as_ref() {
                    ValueInner::Integer(0) => {
                        "0 is where every extra disk starts; list only the sizes to grow to"
                            .to_owned()
                    }
                    ValueInner::Integer(n) => format!("CloudAMQP offers no extra disk of {n} GB"),
                    other => format!(
                        "a disk size is a whole number of GB, not {}",
                        article(other)
                    ),
                };
                self.error(
                    item.span,
                    Some(ctx),
                    format!("`disk_sizes`: {what}; the sizes offered are {offered}"),
                );
                valid = false;
                continue;
            };
            if let Some(&last) = sizes.last()
                && size <= last
            {
                self.error(
                    item.span,
                    Some(ctx),
                    format!(
                        "`disk_sizes` must grow: {size} comes after {last}; list the sizes smallest first, each once (a disk never shrinks)"
                    ),
                );
                valid = false;
                continue;
            }
            sizes.push(size);
        }
        valid.then_some(sizes)
    }
}
