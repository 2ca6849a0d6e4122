fn main() {
    print!("this is not json");
}
