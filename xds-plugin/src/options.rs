//! Options from the environment: XDS hands the plugin nothing but a file name.

use hdrmx_core::frame::xds::Saturated;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// `HDRMX_IMAGE_NUMBER_OFFSET`: XDS frame number `k` reads the master's frame `k - offset`
    /// (both 1-based), as Durin's `DURIN_IMAGE_NUMBER_OFFSET`.
    pub offset: i64,
    /// `HDRMX_XDS_BIN`: frames are presented binned `bin` x `bin` (1 = as stored).
    pub bin: usize,
    /// `HDRMX_XDS_SATURATED`: what an unmasked pixel at the type's maximum becomes.
    pub saturated: Saturated,
    /// `HDRMX_LOG`: 0 quiet (errors only), 1 a line per open, header and close, 2 also per frame.
    pub log: u8,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            offset: 0,
            bin: 1,
            saturated: Saturated::Overload,
            log: 0,
        }
    }
}

impl Options {
    /// The options in the process environment.
    pub fn from_env() -> Result<Options, String> {
        Options::parse(|name| std::env::var(name).ok())
    }

    /// The options from `get(variable)`; an unset or empty variable takes the default, a value
    /// that means nothing is an error naming the variable.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Options, String> {
        let mut o = Options::default();
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(v) = value("HDRMX_IMAGE_NUMBER_OFFSET") {
            o.offset = v
                .parse()
                .map_err(|_| format!("HDRMX_IMAGE_NUMBER_OFFSET={v:?}: expected a whole number"))?;
        }
        if let Some(v) = value("HDRMX_XDS_BIN") {
            o.bin = match v.as_str() {
                "1" => 1,
                "2" => 2,
                "3" => 3,
                "4" => 4,
                _ => return Err(format!("HDRMX_XDS_BIN={v:?}: expected 1, 2, 3 or 4")),
            };
        }
        if let Some(v) = value("HDRMX_XDS_SATURATED") {
            o.saturated = match v.to_ascii_lowercase().as_str() {
                "-1" => Saturated::MinusOne,
                "overload" | "max" => Saturated::Overload,
                _ => {
                    return Err(format!(
                    "HDRMX_XDS_SATURATED={v:?}: expected -1 (saturated pixels as -1, like Durin \
                         and Neggia) or overload (the default: i32::MAX)"
                ))
                }
            };
        }
        if let Some(v) = value("HDRMX_LOG") {
            o.log = match v.as_str() {
                "0" => 0,
                "1" => 1,
                "2" => 2,
                _ => return Err(format!("HDRMX_LOG={v:?}: expected 0, 1 or 2")),
            };
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Options, String> {
        Options::parse(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(parse(&[]).unwrap(), Options::default());
        assert_eq!(
            parse(&[("HDRMX_XDS_BIN", " ")]).unwrap(),
            Options::default()
        );
        let o = parse(&[
            ("HDRMX_IMAGE_NUMBER_OFFSET", "-100"),
            ("HDRMX_XDS_BIN", "3"),
            ("HDRMX_XDS_SATURATED", "-1"),
            ("HDRMX_LOG", "2"),
        ])
        .unwrap();
        assert_eq!(
            o,
            Options {
                offset: -100,
                bin: 3,
                saturated: Saturated::MinusOne,
                log: 2
            }
        );
    }

    #[test]
    fn nonsense_names_the_variable() {
        for (k, v) in [
            ("HDRMX_IMAGE_NUMBER_OFFSET", "1.5"),
            ("HDRMX_XDS_BIN", "5"),
            ("HDRMX_XDS_BIN", "0"),
            ("HDRMX_XDS_SATURATED", "0"),
            ("HDRMX_LOG", "yes"),
        ] {
            let e = parse(&[(k, v)]).unwrap_err();
            assert!(e.starts_with(k), "{e}");
        }
    }
}
