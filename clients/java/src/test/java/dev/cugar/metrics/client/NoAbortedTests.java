package dev.cugar.metrics.client;

import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.LifecycleMethodExecutionExceptionHandler;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;
import org.opentest4j.TestAbortedException;

/**
 * Registered for every test (META-INF/services, junit-platform.properties): a test or lifecycle
 * method aborted by a failed assumption fails instead of being reported as skipped, so a skipped
 * test can never pass the build unnoticed.
 */
public final class NoAbortedTests
    implements TestExecutionExceptionHandler, LifecycleMethodExecutionExceptionHandler {
  @Override
  public void handleTestExecutionException(ExtensionContext context, Throwable thrown)
      throws Throwable {
    throw failIfAborted(context, thrown);
  }

  @Override
  public void handleBeforeAllMethodExecutionException(ExtensionContext context, Throwable thrown)
      throws Throwable {
    throw failIfAborted(context, thrown);
  }

  @Override
  public void handleBeforeEachMethodExecutionException(ExtensionContext context, Throwable thrown)
      throws Throwable {
    throw failIfAborted(context, thrown);
  }

  private static Throwable failIfAborted(ExtensionContext context, Throwable thrown) {
    if (thrown instanceof TestAbortedException) {
      return new AssertionError(
          context.getDisplayName() + " was aborted (a skipped test fails this suite): "
              + thrown.getMessage(),
          thrown);
    }
    return thrown;
  }
}
