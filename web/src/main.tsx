import { render } from "preact";

render(<p>demls</p>, document.getElementById("app")!);
