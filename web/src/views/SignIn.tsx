import { useState } from "preact/hooks";

/** Sign-in with the node's token or the one-time link it printed. */
export function SignIn({ problem, onSubmit }: { problem: string | null; onSubmit: (secret: string) => void }) {
  const [secret, setSecret] = useState("");
  return (
    <main id="main" class="signin">
      <h1>Sign in to your demls node</h1>
      <p>
        Open the <strong>sign in</strong> link that <code>demls node</code> printed when it started, or paste the
        token from the file <code>api-token</code> in the node's data directory.
      </p>
      {problem && (
        <p class="notice error" role="alert">
          {problem}
        </p>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (secret.trim()) onSubmit(secret.trim());
        }}
      >
        <label for="secret">Token or sign-in link</label>
        <input
          id="secret"
          name="secret"
          type="password"
          autocomplete="off"
          required
          value={secret}
          onInput={(e) => setSecret(e.currentTarget.value)}
        />
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}
