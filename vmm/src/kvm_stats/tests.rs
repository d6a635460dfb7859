use super::parse::{DESC_SIZE, HEADER_SIZE, MAX_DESCRIPTORS, MAX_NAME_SIZE, MAX_VALUES};
use super::*;

const NAME_SIZE: u32 = 48;

/// One descriptor of a synthetic file.
struct Desc {
    flags: u32,
    size: u16,
    offset: u32,
    name: Vec<u8>,
}

fn desc(name: &str, offset: u32) -> Desc {
    Desc {
        flags: 0,
        size: 1,
        offset,
        name: name.as_bytes().to_vec(),
    }
}

/// A statistics file laid out as Linux does it: header, id, descriptors, data.
struct File {
    name_size: u32,
    num_desc: Option<u32>,
    desc_offset: Option<u32>,
    data_offset: Option<u32>,
    descs: Vec<Desc>,
    data: Vec<u64>,
}

impl File {
    fn new(descs: Vec<Desc>, data: Vec<u64>) -> Self {
        Self {
            name_size: NAME_SIZE,
            num_desc: None,
            desc_offset: None,
            data_offset: None,
            descs,
            data,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let stride = DESC_SIZE + self.name_size as usize;
        let desc_offset = (HEADER_SIZE + self.name_size as usize) as u32;
        let data_offset = desc_offset + (stride * self.descs.len()) as u32;
        let mut b = Vec::new();
        for v in [
            0,
            self.name_size,
            self.num_desc.unwrap_or(self.descs.len() as u32),
            HEADER_SIZE as u32,
            self.desc_offset.unwrap_or(desc_offset),
            self.data_offset.unwrap_or(data_offset),
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.resize(desc_offset as usize, b'i');
        for d in &self.descs {
            b.extend_from_slice(&d.flags.to_le_bytes());
            b.extend_from_slice(&0i16.to_le_bytes());
            b.extend_from_slice(&d.size.to_le_bytes());
            b.extend_from_slice(&d.offset.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            let mut name = d.name.clone();
            name.resize(self.name_size as usize, 0);
            b.extend_from_slice(&name);
        }
        for v in &self.data {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }
}

fn valid() -> File {
    let mut hist = desc("halt_poll_hist", 16);
    hist.size = 3;
    hist.flags = kvm_bindings::KVM_STATS_TYPE_LOG_HIST;
    let mut ns = desc("halt_wait_ns", 40);
    ns.flags = kvm_bindings::KVM_STATS_UNIT_SECONDS | kvm_bindings::KVM_STATS_TYPE_CUMULATIVE;
    File::new(
        vec![desc("exits", 0), desc("io_exits", 8), hist, ns],
        vec![100, 7, 1, 2, 3, 5000],
    )
}

fn parse(f: &File) -> Result<Layout, StatsParseError> {
    Layout::read(f.bytes().as_slice())
}

#[test]
fn a_valid_file_is_read_by_name() {
    let bytes = valid().bytes();
    let layout = Layout::read(bytes.as_slice()).unwrap();
    let names: Vec<&str> = layout.counters().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["exits", "io_exits", "halt_poll_hist", "halt_wait_ns"]
    );
    let mut buf = Vec::new();
    let values = layout.read_values(bytes.as_slice(), &mut buf).unwrap();
    assert_eq!(values, [100, 7, 1, 2, 3, 5000]);
    assert_eq!(layout.value(&values, "exits"), Some(100));
    assert_eq!(layout.value(&values, "io_exits"), Some(7));
    assert_eq!(layout.value(&values, "halt_wait_ns"), Some(5000));
    let hist = layout.counter("halt_poll_hist").unwrap();
    assert_eq!(hist.kind, Kind::LogHistogram);
    assert_eq!(layout.values_of(&values, hist), Some(&[1, 2, 3][..]));
    assert_eq!(
        layout.value(&values, "halt_poll_hist"),
        None,
        "not a scalar"
    );
    assert_eq!(layout.counter("halt_wait_ns").unwrap().unit, Unit::Seconds);
    assert_eq!(
        layout.value(&values, "mmio_exits"),
        None,
        "missing, not guessed"
    );
}

#[test]
fn a_truncated_file_is_rejected() {
    let bytes = valid().bytes();
    for cut in [0, 10, HEADER_SIZE + 60, bytes.len() - 1] {
        let short = &bytes[..cut];
        let r = Layout::read(short).and_then(|l| l.read_values(short, &mut Vec::new()));
        assert!(
            matches!(r, Err(StatsParseError::Truncated { .. })),
            "cut at {cut}: {r:?}"
        );
    }
}

#[test]
fn header_bounds_are_checked_before_allocating() {
    let mut f = valid();
    f.num_desc = Some(MAX_DESCRIPTORS + 1);
    assert!(matches!(
        parse(&f),
        Err(StatsParseError::TooManyDescriptors(_))
    ));
    f.num_desc = Some(u32::MAX);
    assert!(matches!(
        parse(&f),
        Err(StatsParseError::TooManyDescriptors(_))
    ));
    for size in [0, MAX_NAME_SIZE + 1, u32::MAX] {
        // Only the header is read before the check, so a huge size cannot allocate.
        let mut h = valid().bytes();
        h.truncate(HEADER_SIZE);
        h[4..8].copy_from_slice(&size.to_le_bytes());
        assert!(matches!(
            Layout::read(h.as_slice()),
            Err(StatsParseError::NameSize(s)) if s == size
        ));
    }
    // More descriptors declared than the file holds.
    let mut f = valid();
    f.num_desc = Some(MAX_DESCRIPTORS);
    assert!(matches!(parse(&f), Err(StatsParseError::Truncated { .. })));
}

#[test]
fn offsets_past_the_end_or_overlapping_are_rejected() {
    let mut f = valid();
    f.desc_offset = Some(u32::MAX - 8);
    assert!(matches!(parse(&f), Err(StatsParseError::Truncated { .. })));
    let mut f = valid();
    f.desc_offset = Some(4);
    assert!(matches!(
        parse(&f),
        Err(StatsParseError::Overlap("descriptors", "header"))
    ));
    let mut f = valid();
    f.data_offset = Some(HEADER_SIZE as u32 + NAME_SIZE + 8);
    assert!(matches!(
        parse(&f),
        Err(StatsParseError::Overlap("data", "descriptors"))
    ));
    let mut f = valid();
    f.data_offset = Some(0);
    assert!(matches!(
        parse(&f),
        Err(StatsParseError::Overlap("data", "header"))
    ));
    // A value far past the end of the data block is refused before a buffer is sized for it.
    let mut f = valid();
    f.descs[1].offset = u32::MAX - 4;
    assert!(
        matches!(parse(&f), Err(StatsParseError::DataTooLarge(n, _)) if n == "io_exits"),
        "{:?}",
        parse(&f)
    );
    // A value just past the end of the data block.
    let mut f = valid();
    f.descs[1].offset = 48;
    let bytes = f.bytes();
    let r = Layout::read(bytes.as_slice())
        .and_then(|l| l.read_values(bytes.as_slice(), &mut Vec::new()));
    assert!(
        matches!(r, Err(StatsParseError::Truncated { what: "data", .. })),
        "{r:?}"
    );
    // Two counters sharing a value.
    let mut f = valid();
    f.descs[1].offset = 4;
    match parse(&f) {
        Err(StatsParseError::ValuesOverlap(a, b)) => {
            assert_eq!((a.as_str(), b.as_str()), ("exits", "io_exits"))
        }
        other => panic!("{other:?}"),
    }
    // A histogram running into the next counter.
    let mut f = valid();
    f.descs[2].size = 4;
    assert!(matches!(parse(&f), Err(StatsParseError::ValuesOverlap(..))));
}

#[test]
fn bad_names_and_sizes_are_rejected() {
    let mut f = valid();
    f.descs[0].name = vec![b'x'; NAME_SIZE as usize];
    assert!(matches!(
        parse(&f),
        Err(StatsParseError::NameNotTerminated(0))
    ));
    let mut f = valid();
    f.descs[1].name = vec![0xff, 0xfe];
    assert!(matches!(parse(&f), Err(StatsParseError::BadName(1))));
    let mut f = valid();
    f.descs[1].name = Vec::new();
    assert!(matches!(parse(&f), Err(StatsParseError::BadName(1))));
    let mut f = valid();
    f.descs[1].name = b"exits".to_vec();
    assert!(matches!(parse(&f), Err(StatsParseError::DuplicateName(n)) if n == "exits"));
    for size in [0, MAX_VALUES + 1, u16::MAX] {
        let mut f = valid();
        f.descs[3].size = size;
        assert!(
            matches!(parse(&f), Err(StatsParseError::ValueCount { size: s, .. }) if s == size),
            "size {size}"
        );
    }
}

#[test]
fn errors_read_as_sentences() {
    let mut f = valid();
    f.num_desc = Some(u32::MAX);
    let e = parse(&f).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("the statistics header declares {} counters, more than the {MAX_DESCRIPTORS} sipi reads", u32::MAX)
    );
}

/// Opens a VM with one vCPU on /dev/kvm (None: skipped, see `kvm_for_test`).
fn vm_and_vcpu() -> Option<(kvm_ioctls::VmFd, kvm_ioctls::VcpuFd)> {
    let kvm = crate::kvm::kvm_for_test()?;
    let vm = kvm.create_vm().expect("KVM_CREATE_VM");
    let vcpu = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
    Some((vm, vcpu))
}

#[test]
fn the_real_kvm_names_its_exits() {
    let Some((vm, vcpu)) = vm_and_vcpu() else {
        return;
    };
    let f = StatsFile::open(&vcpu).expect("this host has binary statistics");
    for name in ["exits", "io_exits", "halt_exits", "insn_emulation"] {
        let c = f.layout().counter(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!((c.kind, c.size), (Kind::Cumulative, 1), "{name}");
    }
    let mut buf = Vec::new();
    let values = f.snapshot(&mut buf).unwrap();
    assert_eq!(
        f.layout().value(&values, "exits"),
        Some(0),
        "a vCPU that never ran"
    );
    let v = StatsFile::open(&vm).expect("VM statistics");
    assert!(v.layout().counter("remote_tlb_flush").is_some());
    assert!(v.snapshot(&mut buf).is_ok());
}
