// A pull on an input port.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  pullup (a[0]);
  assign y = a ^ b;
endmodule
