fn main() {
    let mut ebpf = aya::Ebpf::load(enforcer::kernel::object::ENFORCER).expect("load");
    let prog: &mut aya::programs::Xdp = ebpf.program_mut("enforcer").unwrap().try_into().unwrap();
    prog.load().expect("verifier");
    println!("loaded");
}
