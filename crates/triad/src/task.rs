//! Tasks and the task registry.
//!
//! A *task* is a free function marked `#[triad::task]`: a typed input, a typed output, both serde
//! types, and a stable name (`module::path::function`). The attribute makes the function a unit
//! struct implementing [`Task`] and submits a [`Registration`] for it to a link-time collection
//! (the `inventory` crate). [`registry()`] indexes that collection once into a hash map, so
//! lookup by name is O(1), and reports two tasks with one name as
//! [`RegistryError::Duplicate`] when the registry is first built — before any task is run by
//! name. A process that was started from the same executable sees the same registry, which is
//! how a worker process finds a function by name alone.

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::error::RegistryError;
use crate::error::TaskError;

/// A boxed future that a task's async body returns.
pub type BoxFuture<O> = Pin<Box<dyn Future<Output = O> + Send + 'static>>;

/// How a task's body runs: a plain function, or one that returns a future.
#[derive(Debug)]
pub enum Body<I, O> {
    /// A blocking function: engines call it on a thread (in async mode, through `spawn_blocking`).
    Blocking(fn(I) -> O),
    /// An `async fn`: engines poll it on an event loop (elsewhere, they block on it).
    Async(fn(I) -> BoxFuture<O>),
}

impl<I, O> Clone for Body<I, O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<I, O> Copy for Body<I, O> {}

/// A named function that triad can run in any mode. Implement it with `#[triad::task]`.
///
/// # Examples
///
/// ```
/// #[triad::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// use triad::Task;
/// assert_eq!(square::call(7), 49);
/// assert!(square::NAME.ends_with("::square"));
/// assert_eq!(triad::run(triad::Mode::Serial, square, [2, 3]).unwrap()[1], Ok(9));
/// ```
pub trait Task: Copy + Send + Sync + 'static {
    /// The task's input: the function's argument, or a tuple of its arguments.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The task's output: the function's return type.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The stable registry name: `module::path::function`.
    const NAME: &'static str;
    /// The function itself.
    fn body(&self) -> Body<Self::Input, Self::Output>;

    /// Runs the task on this thread, containing a panic as [`TaskError::Panicked`].
    fn run_here(&self, input: Self::Input) -> Result<Self::Output, TaskError> {
        let body = self.body();
        catch_unwind(AssertUnwindSafe(move || match body {
            Body::Blocking(function) => function(input),
            Body::Async(function) => block_on_here(function(input)),
        }))
        .map_err(TaskError::from_panic)
    }
}

/// One entry of the registry: a task's name and a type-erased way to call it on encoded bytes.
#[derive(Debug)]
pub struct Registration {
    /// The task's stable name.
    pub name: &'static str,
    invoke: InvokeEncoded,
    signature: fn() -> String,
}

/// Runs a task on its encoded input and the descriptors that came with it.
type InvokeEncoded = fn(&[u8], Vec<OwnedFd>, &mut Vec<u8>) -> Result<(), TaskError>;

impl Registration {
    /// The registration of task `T`; `#[triad::task]` submits one per task.
    pub const fn of<T: Task + Default>() -> Self {
        Registration {
            name: T::NAME,
            invoke: invoke_encoded::<T>,
            signature: signature_of::<T>,
        }
    }

    /// The task's input and output types, as this build names them: two builds whose tasks
    /// of one name disagree here would misread each other's bytes (the cluster checks it).
    pub fn signature(&self) -> String {
        (self.signature)()
    }

    /// Decodes `input` (postcard, with `fds` for the [`SharedFd`](crate::fdpass::SharedFd)s
    /// inside it), runs the task on this thread and encodes its output.
    ///
    /// A malformed input is [`TaskError::Codec`]; a panic is [`TaskError::Panicked`].
    pub fn invoke(&self, input: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<u8>, TaskError> {
        let mut output = Vec::new();
        (self.invoke)(input, fds, &mut output)?;
        Ok(output)
    }

    /// [`invoke`](Self::invoke), appending the encoded output to `output`; on an error `output`
    /// is left as it was.
    pub fn invoke_into(
        &self,
        input: &[u8],
        fds: Vec<OwnedFd>,
        output: &mut Vec<u8>,
    ) -> Result<(), TaskError> {
        (self.invoke)(input, fds, output)
    }
}

fn signature_of<T: Task>() -> String {
    format!(
        "fn({}) -> {}",
        std::any::type_name::<T::Input>(),
        std::any::type_name::<T::Output>()
    )
}

fn invoke_encoded<T: Task + Default>(
    input: &[u8],
    fds: Vec<OwnedFd>,
    encoded: &mut Vec<u8>,
) -> Result<(), TaskError> {
    let input: T::Input = crate::fdpass::decode(input, fds)
        .map_err(|e| TaskError::Codec(format!("input of `{}`: {e}", T::NAME)))?;
    let output = T::default().run_here(input)?;
    crate::fdpass::postcard_append(&output, encoded)
        .map_err(|e| TaskError::Codec(format!("output of `{}`: {e}", T::NAME)))
}

/// Decodes an output that a worker encoded with [`Registration::invoke_into`]: the caller's
/// side of the same codec.
pub(crate) fn decode_output<T: Task>(bytes: &[u8]) -> Result<T::Output, TaskError> {
    postcard::from_bytes(bytes)
        .map_err(|error| TaskError::Codec(format!("output of `{}`: {error}", T::NAME)))
}

inventory::collect!(Registration);

/// The registered tasks of this binary, indexed by name.
#[derive(Debug)]
pub struct Registry {
    by_name: HashMap<&'static str, &'static Registration>,
}

impl Registry {
    /// The task registered under `name`.
    pub fn get(&self, name: &str) -> Option<&'static Registration> {
        self.by_name.get(name).copied()
    }

    /// Calls the task registered under `name` on encoded input; see [`Registration::invoke`].
    pub fn invoke(
        &self,
        name: &str,
        input: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Result<Vec<u8>, TaskError> {
        self.get(name)
            .ok_or_else(|| TaskError::UnknownTask(name.to_owned()))?
            .invoke(input, fds)
    }

    /// The names of all registered tasks, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.by_name.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// How many tasks are registered.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no task is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    fn build<'a>(
        registrations: impl IntoIterator<Item = &'a Registration>,
    ) -> Result<Registry, RegistryError>
    where
        'a: 'static,
    {
        let mut by_name = HashMap::new();
        for registration in registrations {
            if by_name.insert(registration.name, registration).is_some() {
                return Err(RegistryError::Duplicate(registration.name));
            }
        }
        Ok(Registry { by_name })
    }
}

/// This binary's task registry, built on first use.
///
/// # Examples
///
/// ```
/// #[triad::task]
/// fn double(x: i32) -> i32 {
///     2 * x
/// }
///
/// use triad::Task;
/// let registry = triad::registry().expect("task names are unique");
/// let input = postcard::to_stdvec(&21_i32).unwrap();
/// let output = registry.invoke(double::NAME, &input, Vec::new()).unwrap();
/// assert_eq!(postcard::from_bytes::<i32>(&output).unwrap(), 42);
/// ```
pub fn registry() -> Result<&'static Registry, RegistryError> {
    static REGISTRY: OnceLock<Result<Registry, RegistryError>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| Registry::build(inventory::iter::<Registration>))
        .as_ref()
        .map_err(Clone::clone)
}

/// Drives `future` to completion on this thread, on a current-thread tokio runtime kept per
/// thread, so that async task bodies can run in the serial and thread engines.
///
/// Panics when called from inside a tokio runtime (tokio forbids nested `block_on`); the
/// engines catch that panic like any other.
pub(crate) fn block_on_here<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread tokio runtime needs only an epoll fd and a timer");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[crate::task]
    fn add(a: u32, b: u32) -> u32 {
        a + b
    }

    #[crate::task]
    fn nothing() {}

    #[crate::task]
    async fn later(x: u8) -> u8 {
        tokio::task::yield_now().await;
        x
    }

    fn fail(_: &[u8], _: Vec<OwnedFd>, _: &mut Vec<u8>) -> Result<(), TaskError> {
        Err(TaskError::Cancelled)
    }

    fn no_signature() -> String {
        String::new()
    }

    #[test]
    fn two_tasks_with_one_name_are_refused() {
        static FIRST: Registration = Registration {
            name: "m::same",
            invoke: fail,
            signature: no_signature,
        };
        static SECOND: Registration = Registration {
            name: "m::same",
            invoke: fail,
            signature: no_signature,
        };
        static OTHER: Registration = Registration {
            name: "m::other",
            invoke: fail,
            signature: no_signature,
        };
        assert_eq!(
            Registry::build([&FIRST, &OTHER, &SECOND]).unwrap_err(),
            RegistryError::Duplicate("m::same")
        );
        assert_eq!(Registry::build([&FIRST, &OTHER]).unwrap().len(), 2);
    }

    #[test]
    fn a_signature_names_the_input_and_output_types() {
        let registration = registry().unwrap().get(add::NAME).unwrap();
        assert_eq!(registration.signature(), "fn((u32, u32)) -> u32");
    }

    #[test]
    fn names_are_module_path_and_function() {
        assert_eq!(add::NAME, "triad::task::tests::add");
        assert_eq!(nothing::NAME, "triad::task::tests::nothing");
        let registry = registry().unwrap();
        for name in [add::NAME, nothing::NAME, later::NAME] {
            assert_eq!(registry.get(name).unwrap().name, name);
        }
        assert!(registry.names().contains(&"triad::workloads::count_primes"));
    }

    #[test]
    fn invoke_runs_tuple_unit_and_async_tasks_on_encoded_bytes() {
        let registry = registry().unwrap();
        let out = registry
            .invoke(
                add::NAME,
                &postcard::to_stdvec(&(2_u32, 3_u32)).unwrap(),
                Vec::new(),
            )
            .unwrap();
        assert_eq!(postcard::from_bytes::<u32>(&out).unwrap(), 5);
        let out = registry
            .invoke(
                nothing::NAME,
                &postcard::to_stdvec(&()).unwrap(),
                Vec::new(),
            )
            .unwrap();
        postcard::from_bytes::<()>(&out).unwrap();
        let out = registry.invoke(later::NAME, &[9], Vec::new()).unwrap();
        assert_eq!(postcard::from_bytes::<u8>(&out).unwrap(), 9);
    }

    #[test]
    fn undecodable_input_and_unknown_names_are_errors() {
        let registry = registry().unwrap();
        assert!(matches!(
            registry.invoke(add::NAME, &[0xff], Vec::new()),
            Err(TaskError::Codec(detail)) if detail.contains("input of `triad::task::tests::add`")
        ));
        assert_eq!(
            registry.invoke("no::such::task", &[], Vec::new()),
            Err(TaskError::UnknownTask("no::such::task".into()))
        );
    }
}
