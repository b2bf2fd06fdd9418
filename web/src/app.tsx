import { useEffect, useState } from "preact/hooks";
import { parseProjectLink } from "./links";
import { NewProjectPage } from "./new-project";
import { ProjectPage } from "./project-page";

/** Changes the page without a reload; the App re-reads the location on "popstate". */
export function navigate(url: string): void {
  history.pushState(null, "", url);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function App() {
  const [location, setLocation] = useState(() => ({ ...window.location }));

  useEffect(() => {
    const update = () => setLocation({ ...window.location });
    window.addEventListener("popstate", update);
    window.addEventListener("hashchange", update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener("hashchange", update);
    };
  }, []);

  const link = parseProjectLink(window.location);
  return (
    <div class="shell">
      <header class="topbar">
        <a class="brand" href="/" onClick={(event) => {
          event.preventDefault();
          navigate("/");
        }}>
          <span class="brand-mark" aria-hidden="true" />
          ViralSplit
        </a>
      </header>
      <main id="main">
        {link ? (
          <ProjectPage key={`${link.projectId}:${link.token}:${location.hash}`} link={link} />
        ) : (
          <NewProjectPage />
        )}
      </main>
    </div>
  );
}
