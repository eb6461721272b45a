//! Tracking where a module visitor or mapper is: the parameter path as saved files name it.

/// The stack of (field name, container type) a visitor or mapper has entered.
#[derive(Default)]
pub struct PathStack(Vec<(String, String)>);

impl PathStack {
    /// Entering a field.
    pub fn push(&mut self, name: &str, container: &str) {
        self.0.push((name.to_string(), container.to_string()));
    }

    /// Leaving it.
    pub fn pop(&mut self) {
        self.0.pop();
    }

    /// The dotted path, enum variants left out (`body.layer1.0.conv1.conv.weight`).
    pub fn path(&self) -> String {
        self.0
            .iter()
            .filter(|(_, container)| !container.starts_with("Enum:"))
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The innermost (field name, container type).
    pub fn leaf(&self) -> (&str, &str) {
        self.0
            .last()
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .unwrap_or(("", ""))
    }
}
