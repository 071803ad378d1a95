//! Whether the CPU a run measured on was real, a hypervisor's (hardware
//! virtualisation: KVM, Hyper-V, Xen, VMware…) or an emulator's (QEMU's TCG,
//! which translates every instruction: timings there say nothing about a real
//! CPU and must never be gated against others).
//!
//! The strongest sign is the hypervisor's own CPUID signature (leaf
//! 0x4000_0000): KVM answers `KVMKVMKVM`, QEMU's TCG `TCGTCGTCGTCG`. /proc/cpuinfo
//! (the `hypervisor` flag, QEMU's model names) and the firmware's DMI vendor
//! back it up where the leaf is hidden. A container is not a virtual machine:
//! it shares the host's CPU, so it is not told apart here.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What ran the instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MachineKind {
    /// A real CPU, no hypervisor seen.
    BareMetal,
    /// A virtual machine on hardware virtualisation: near-native CPU, but
    /// another tenant or the hypervisor can take time (steal).
    Virtualised,
    /// An emulated CPU (QEMU TCG): timings are not comparable with any other
    /// machine's, only with the same emulator's.
    Emulated,
}

/// The kind of machine and the signs it was told from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// Bare metal, virtualised or emulated.
    pub kind: MachineKind,
    /// The hypervisor or emulator, when named (`KVM`, `QEMU TCG`, `Hyper-V`, …).
    pub hypervisor: Option<String>,
    /// The signs read, e.g. `cpuid 0x40000000: "KVMKVMKVM"`, `cpuinfo flag: hypervisor`.
    pub evidence: Vec<String>,
}

/// The raw signs, read from the host (or fed by a test).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signs {
    /// CPUID leaf 0x4000_0000's 12-byte vendor signature, when the CPU has
    /// the hypervisor bit (the leaf is undefined otherwise).
    pub cpuid_vendor: Option<String>,
    /// /proc/cpuinfo's first `flags` line has `hypervisor`.
    pub hypervisor_flag: bool,
    /// /proc/cpuinfo's first `model name`.
    pub cpu_model: String,
    /// /sys/class/dmi/id/sys_vendor, trimmed (empty when absent: no DMI in
    /// Firecracker or on most non-x86 machines).
    pub dmi_vendor: String,
}

impl Signs {
    /// Reads the signs under `root` (normally `/`); the CPUID leaf is read
    /// from this CPU only when `root` is `/`, so tests with captured trees
    /// see no CPUID.
    pub fn read(root: &Path) -> Signs {
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_default();
        let cpuinfo = read("proc/cpuinfo");
        let hypervisor_flag = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .and_then(|l| l.split(':').nth(1))
            .is_some_and(|f| f.split_whitespace().any(|w| w == "hypervisor"));
        let cpuid_vendor = if root == Path::new("/") && hypervisor_flag {
            cpuid_hypervisor_vendor()
        } else {
            None
        };
        Signs {
            cpuid_vendor,
            hypervisor_flag,
            cpu_model: cpuinfo
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default(),
            dmi_vendor: read("sys/class/dmi/id/sys_vendor").trim().to_string(),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn cpuid_hypervisor_vendor() -> Option<String> {
    // Leaf 0x4000_0000 is reserved for hypervisors: EAX is the highest
    // hypervisor leaf, EBX:ECX:EDX the vendor signature. Asked only when the
    // hypervisor bit is set (a real CPU's answer there is meaningless).
    let r = std::arch::x86_64::__cpuid(0x4000_0000);
    let mut sig = Vec::with_capacity(12);
    for w in [r.ebx, r.ecx, r.edx] {
        sig.extend_from_slice(&w.to_le_bytes());
    }
    let s: String = String::from_utf8_lossy(&sig)
        .trim_end_matches('\0')
        .to_string();
    (!s.trim().is_empty()).then_some(s)
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid_hypervisor_vendor() -> Option<String> {
    None
}

/// Known CPUID hypervisor signatures: (signature, name, emulated).
const VENDORS: &[(&str, &str, bool)] = &[
    ("TCGTCGTCGTCG", "QEMU TCG", true),
    ("KVMKVMKVM", "KVM", false),
    ("Linux KVM Hv", "KVM (Hyper-V enlightenments)", false),
    ("Microsoft Hv", "Hyper-V", false),
    ("VMwareVMware", "VMware", false),
    ("XenVMMXenVMM", "Xen", false),
    ("VBoxVBoxVBox", "VirtualBox", false),
    ("bhyve bhyve", "bhyve", false),
    ("ACRNACRNACRN", "ACRN", false),
    ("QNXQVMBSQG", "QNX", false),
    (" lrpepyh vr", "Parallels", false),
    ("Apple VZ", "Apple Virtualization", false),
];

/// Tells the kind of machine from its signs.
pub fn classify(s: &Signs) -> Machine {
    let mut evidence = Vec::new();
    if let Some(v) = &s.cpuid_vendor {
        evidence.push(format!("cpuid 0x40000000: {v:?}"));
    }
    if s.hypervisor_flag {
        evidence.push("cpuinfo flag: hypervisor".into());
    }
    if !s.cpu_model.is_empty() {
        evidence.push(format!("cpu model: {:?}", s.cpu_model));
    }
    if !s.dmi_vendor.is_empty() {
        evidence.push(format!("dmi sys_vendor: {:?}", s.dmi_vendor));
    }
    // QEMU names its own CPU models "QEMU TCG CPU" (`-cpu max` under TCG) and
    // "QEMU Virtual CPU" (qemu64, qemu32): KVM guests given those models still
    // answer KVM's signature, so the model decides only without one.
    let qemu_model =
        s.cpu_model.starts_with("QEMU TCG CPU") || s.cpu_model.starts_with("QEMU Virtual CPU");
    let known = s.cpuid_vendor.as_deref().and_then(|v| {
        VENDORS
            .iter()
            .find(|(sig, _, _)| v.trim_end() == sig.trim_end())
    });
    let (kind, hypervisor) = match known {
        Some((_, name, true)) => (MachineKind::Emulated, Some((*name).to_string())),
        Some((_, name, false)) => (MachineKind::Virtualised, Some((*name).to_string())),
        // QEMU without an accelerator's signature: TCG (KVM always shows its
        // own unless hidden with `kvm=off`, which the evidence then tells).
        None if qemu_model || (s.hypervisor_flag && s.dmi_vendor == "QEMU") => {
            (MachineKind::Emulated, Some("QEMU TCG".to_string()))
        }
        None if s.hypervisor_flag || s.cpuid_vendor.is_some() => {
            (MachineKind::Virtualised, s.cpuid_vendor.clone())
        }
        None => (MachineKind::BareMetal, None),
    };
    Machine {
        kind,
        hypervisor,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signs(vendor: Option<&str>, flag: bool, model: &str, dmi: &str) -> Signs {
        Signs {
            cpuid_vendor: vendor.map(str::to_string),
            hypervisor_flag: flag,
            cpu_model: model.into(),
            dmi_vendor: dmi.into(),
        }
    }

    #[test]
    fn tcg_kvm_and_bare_metal_are_told_apart() {
        // Read in a Debian 6.12 guest under `vng --disable-kvm` on this machine.
        let tcg = classify(&signs(
            Some("TCGTCGTCGTCG"),
            true,
            "QEMU TCG CPU version 2.5+",
            "QEMU",
        ));
        assert_eq!(tcg.kind, MachineKind::Emulated);
        assert_eq!(tcg.hypervisor.as_deref(), Some("QEMU TCG"));
        assert!(tcg.evidence.iter().any(|e| e.contains("TCGTCGTCGTCG")));
        // A KVM guest with QEMU's default CPU model is still hardware-virtualised.
        let kvm = classify(&signs(
            Some("KVMKVMKVM"),
            true,
            "QEMU Virtual CPU version 2.5+",
            "QEMU",
        ));
        assert_eq!(kvm.kind, MachineKind::Virtualised);
        assert_eq!(kvm.hypervisor.as_deref(), Some("KVM"));
        // Firecracker: KVM, no DMI.
        let fc = classify(&signs(Some("KVMKVMKVM"), true, "AMD EPYC", ""));
        assert_eq!(fc.kind, MachineKind::Virtualised);
        let metal = classify(&signs(None, false, "AMD EPYC 9B14", "Dell Inc."));
        assert_eq!(metal.kind, MachineKind::BareMetal);
        assert_eq!(metal.hypervisor, None);
    }

    #[test]
    fn without_a_signature_qemu_models_mean_emulation() {
        // A TCG guest whose CPUID leaf is hidden or unread (non-x86 reader).
        let hidden = classify(&signs(None, true, "QEMU Virtual CPU version 2.5+", ""));
        assert_eq!(hidden.kind, MachineKind::Emulated);
        let dmi_only = classify(&signs(None, true, "Intel Xeon", "QEMU"));
        assert_eq!(dmi_only.kind, MachineKind::Emulated);
        // An unknown hypervisor is still a hypervisor.
        let other = classify(&signs(Some("NewHvNewHv"), true, "AMD EPYC", ""));
        assert_eq!(other.kind, MachineKind::Virtualised);
        assert_eq!(other.hypervisor.as_deref(), Some("NewHvNewHv"));
        let flag_only = classify(&signs(None, true, "AMD EPYC", ""));
        assert_eq!(flag_only.kind, MachineKind::Virtualised);
    }

    #[test]
    fn reads_signs_from_a_captured_tree() {
        let root = tempfile::tempdir().expect("tempdir");
        let p = root.path();
        std::fs::create_dir_all(p.join("proc")).expect("mkdir");
        std::fs::create_dir_all(p.join("sys/class/dmi/id")).expect("mkdir");
        std::fs::write(
            p.join("proc/cpuinfo"),
            "processor\t: 0\nmodel name\t: QEMU TCG CPU version 2.5+\nflags\t\t: fpu sse2 hypervisor lahf_lm\n\n",
        )
        .expect("write");
        std::fs::write(p.join("sys/class/dmi/id/sys_vendor"), "QEMU\n").expect("write");
        let s = Signs::read(p);
        assert_eq!(s, signs(None, true, "QEMU TCG CPU version 2.5+", "QEMU"));
        assert_eq!(classify(&s).kind, MachineKind::Emulated);
    }
}
