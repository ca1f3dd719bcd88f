//! `#[triad::task]`'s compile errors, checked with trybuild: each refused shape of function
//! gets its own clear message, and every accepted shape compiles.

#[test]
fn task_attribute_errors_and_shapes() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
