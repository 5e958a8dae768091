fn main() {
    println!("acmectl: nothing to do");
}
