fn main() {
    let listen = std::env::args().nth(2).unwrap_or_else(|| {
        let mut port = itoa::Buffer::new();
        format!("{}:{}", any_address(), port.format(8080))
    });
    println!("api would listen on {listen}");
}

#[cfg(target_arch = "aarch64")]
fn any_address() -> &'static str {
    arm_support::any_address()
}

#[cfg(not(target_arch = "aarch64"))]
fn any_address() -> &'static str {
    "0.0.0.0"
}
