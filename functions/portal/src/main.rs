shared::main!(http, portal::Function);
