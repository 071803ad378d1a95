//! Closed sets of named choices (`--format`, `--variants`, …): the library names
//! its options here once, and the binary turns them into command-line values
//! with their help, so no library type depends on the CLI parser.

/// A closed set of choices, spelled on the command line and in reports by `name`.
pub trait Choice: Copy + Send + Sync + 'static {
    /// Every choice, in help order.
    const ALL: &'static [Self];
    /// The spelling on the command line and in reports.
    fn name(self) -> &'static str;
    /// One line for `--help`.
    fn about(self) -> &'static str;

    /// The choice spelled `s`, or an error listing the accepted spellings.
    fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
                format!("'{s}' is not one of: {}", names.join(", "))
            })
    }
}
