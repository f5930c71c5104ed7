import { render } from "preact";
import { Root } from "./app";
import "./style.css";

const app = document.getElementById("app");
if (app) render(<Root />, app);
