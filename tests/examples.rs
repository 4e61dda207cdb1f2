//! The example a newcomer runs first: the committed sample book is what the generator
//! makes, and the README's run command imports it cleanly.
