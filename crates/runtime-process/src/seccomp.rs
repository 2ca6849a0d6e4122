//! The system calls a function never needs, denied by a seccomp filter that every instance
//! installs before it starts its interpreter (and that its children inherit).
//!
//! Three filters: the first answers `EPERM` to kernel, mount, tracing, key, module, BPF and
//! namespace calls (and to `clone` asking for new namespaces); the second answers `ENOSYS`
//! to `clone3`, whose flags a filter cannot see, so that the C library falls back to `clone`;
//! the third answers `ENOSYS` to every x32 system call (x86-64 numbers with bit 30 set),
//! which the other filters, matching exact numbers, would let through.

use std::collections::BTreeMap;

use crate::sandbox::Filters;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Denied outright.
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_kcmp,
    libc::SYS_lookup_dcookie,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_vhangup,
    libc::SYS_pidfd_getfd,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// `clone` flags that make new namespaces.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
];

fn arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("seccomp: {e:?}"))
}

/// The filters, compiled to BPF, in the order they are installed.
pub fn filters() -> Result<Filters, String> {
    Ok(Filters {
        instance: build(DENIED)?,
        zygote: build(
            &DENIED
                .iter()
                .copied()
                .filter(|n| !ZYGOTE_ALLOWED.contains(n))
                .collect::<Vec<_>>(),
        )?,
    })
}

/// What a zygote may do beyond an instance, to make its instances: new namespaces, mounts of
/// their `/proc` and `/tmp`, and back into its own PID namespace.
const ZYGOTE_ALLOWED: &[i64] = &[libc::SYS_unshare, libc::SYS_setns, libc::SYS_mount];

/// The filters that deny `denied` and namespaces made by `clone`.
fn build(denied: &[i64]) -> Result<Vec<BpfProgram>, String> {
    let arch = arch()?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied.iter().map(|n| (*n, Vec::new())).collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|flag| {
            SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(*flag),
                *flag,
            )
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(|e| format!("seccomp: {e:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("seccomp: {e:?}"))?;
    let no_clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| format!("seccomp: {e:?}"))?;
    let mut out = Vec::new();
    for f in [deny, no_clone3] {
        out.push(BpfProgram::try_from(f).map_err(|e| format!("seccomp: {e:?}"))?);
    }
    #[cfg(target_arch = "x86_64")]
    out.push(no_x32());
    Ok(out)
}

/// `ENOSYS` for any system call number at or above `__X32_SYSCALL_BIT`. It does not check
/// the architecture itself: every installed filter runs on every call and the strictest
/// answer wins, and the seccompiler filters kill a call from any other architecture.
#[cfg(target_arch = "x86_64")]
fn no_x32() -> BpfProgram {
    use seccompiler::sock_filter;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    // Offset of `nr` in `struct seccomp_data`.
    const NR: u32 = 0;
    let op = |code: u32, jt: u8, jf: u8, k: u32| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    vec![
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, NR),
        op(
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
            0,
            1,
            X32_SYSCALL_BIT,
        ),
        op(
            libc::BPF_RET | libc::BPF_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile() {
        let all = filters().unwrap();
        for filters in [&all.instance, &all.zygote] {
            assert_eq!(
                filters.len(),
                if cfg!(target_arch = "x86_64") { 3 } else { 2 }
            );
            assert!(filters.iter().all(|f| !f.is_empty() && f.len() < 4096));
        }
        // The zygote's deny filter is the instances' less unshare, setns and mount.
        assert!(all.zygote[0].len() < all.instance[0].len());
    }
}
