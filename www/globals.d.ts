// What the front end finds in the browser beyond the DOM's own types: Chart.js's UMD build sets
// a global `Chart` (charts.js takes it and puts the host page's back).
declare var Chart: any;
