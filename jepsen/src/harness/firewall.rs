//! Network faults inside the namespaces: nftables drop rules ("grudges"), probabilistic loss,
//! and `tc tbf` bandwidth limits.
//!
//! Each namespace gets at most one nftables table, `inet rkj`, with one input chain. Its whole
//! content is re-rendered from the desired [`NsRules`] and swapped in atomically by one
//! `nft -f` transaction (`table …; delete table …; table … { … }`), so a namespace never sits
//! half-configured and healing is deleting the table. Only inputs are filtered: a grudge of `a`
//! against `b` drops what `b` sends to `a`, so a symmetric partition is two grudges and a
//! one-way partition is one.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// The nftables table every rule of the harness lives in.
pub const TABLE: &str = "rkj";

/// The desired filter of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NsRules {
    /// Drop every packet from these sources.
    pub drop_from: BTreeSet<Ipv4Addr>,
    /// Drop this percentage of the packets arriving on `eth0` (0 = none).
    pub loss_percent: u8,
}

impl NsRules {
    /// Whether these rules filter nothing.
    pub fn is_empty(&self) -> bool {
        self.drop_from.is_empty() && self.loss_percent == 0
    }

    /// The `nft -f` script that replaces the namespace's table with these rules.
    pub fn render(&self) -> String {
        // `table` first makes the `delete` valid even when the table does not exist yet.
        let mut s = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
        if self.is_empty() {
            return s;
        }
        s.push_str(&format!(
            "table inet {TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n"
        ));
        if !self.drop_from.is_empty() {
            let set: Vec<String> = self.drop_from.iter().map(|ip| ip.to_string()).collect();
            s.push_str(&format!("    ip saddr {{ {} }} drop\n", set.join(", ")));
        }
        if self.loss_percent > 0 {
            s.push_str(&format!(
                "    iifname \"eth0\" numgen random mod 100 < {} drop\n",
                self.loss_percent
            ));
        }
        s.push_str("  }\n}\n");
        s
    }
}

/// Runs `argv` inside namespace `ns`, feeding it `stdin`; returns its stdout.
///
/// # Errors
/// The command's stderr (or the spawn error) when it cannot run or exits non-zero.
pub fn ns_exec(ns: &str, argv: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .args(argv)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("ip netns exec {ns} {}: {e}", argv.join(" ")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("writing to {}: {e}", argv.join(" ")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for {}: {e}", argv.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip netns exec {ns} {}: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Replaces the filter of namespace `ns` with `rules`.
///
/// # Errors
/// When `nft` fails.
pub fn apply(ns: &str, rules: &NsRules) -> Result<(), String> {
    ns_exec(ns, &["nft", "-f", "-"], Some(&rules.render())).map(|_| ())
}

/// A token-bucket limit on what a namespace sends out of `eth0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth {
    /// Rate in kbit/s.
    pub rate_kbit: u32,
}

/// Limits (or, with `None`, unlimits) what namespace `ns` sends.
///
/// # Errors
/// When `tc` fails (removing a limit that is not there is not an error).
pub fn set_bandwidth(ns: &str, limit: Option<Bandwidth>) -> Result<(), String> {
    match limit {
        Some(b) => {
            let rate = format!("{}kbit", b.rate_kbit);
            ns_exec(
                ns,
                &[
                    "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", &rate, "burst",
                    "16kbit", "latency", "500ms",
                ],
                None,
            )
            .map(|_| ())
        }
        None => {
            let shown = ns_exec(ns, &["tc", "qdisc", "show", "dev", "eth0"], None)?;
            if shown.contains("tbf") {
                ns_exec(ns, &["tc", "qdisc", "del", "dev", "eth0", "root"], None)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_rules_only_delete_the_table() {
        assert_eq!(
            NsRules::default().render(),
            "table inet rkj\ndelete table inet rkj\n"
        );
    }

    #[test]
    fn grudge_and_loss_render_in_one_chain() {
        let rules = NsRules {
            drop_from: [Ipv4Addr::new(198, 18, 0, 12), Ipv4Addr::new(198, 18, 0, 11)].into(),
            loss_percent: 20,
        };
        let s = rules.render();
        assert!(
            s.contains("ip saddr { 198.18.0.11, 198.18.0.12 } drop"),
            "{s}"
        );
        assert!(s.contains("numgen random mod 100 < 20 drop"), "{s}");
        assert!(s.starts_with("table inet rkj\ndelete table inet rkj\ntable inet rkj {"));
    }
}
